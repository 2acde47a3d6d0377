//! A check of a JSON document against a JSON Schema, for the keywords
//! `conformance/report.schema.json` uses: `type`, `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `minimum` and `$ref` to `#/$defs/...`. A keyword it
//! does not know is an error, so that the schema cannot say more than is checked.

#![allow(dead_code)]

use serde_json::Value;

/// The report's schema, as written in the repository.
pub fn report_schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/report.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("the schema file is readable");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Every place where `document` breaks `schema`, as `PATH: what`; empty when it conforms.
pub fn errors(schema: &Value, document: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, document, "$", &mut out);
    out
}

const ANNOTATIONS: &[&str] = &["$schema", "$defs", "title", "description"];

fn check(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(keywords) = schema.as_object() else {
        out.push(format!("{path}: the schema here is not an object"));
        return;
    };
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => match resolve(root, rule) {
                Some(target) => check(root, target, value, path, out),
                None => out.push(format!("{path}: unknown $ref {rule}")),
            },
            "type" => {
                let wanted = rule.as_str().unwrap_or_default();
                if !has_type(value, wanted) {
                    out.push(format!("{path}: {value} is not of type {wanted}"));
                }
            }
            "enum" => {
                let choices = rule.as_array().map(Vec::as_slice).unwrap_or_default();
                if !choices.contains(value) {
                    out.push(format!("{path}: {value} is not one of {rule}"));
                }
            }
            "minimum" => {
                if let (Some(n), Some(min)) = (value.as_f64(), rule.as_f64())
                    && n < min
                {
                    out.push(format!("{path}: {n} is below {min}"));
                }
            }
            "required" => {
                for name in rule.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if value.as_object().is_some_and(|o| !o.contains_key(name)) {
                        out.push(format!("{path}: {name} is missing"));
                    }
                }
            }
            "properties" => {
                if let (Some(object), Some(properties)) = (value.as_object(), rule.as_object()) {
                    for (name, field) in object {
                        if let Some(schema) = properties.get(name) {
                            check(root, schema, field, &format!("{path}.{name}"), out);
                        }
                    }
                }
            }
            "additionalProperties" => {
                let declared = keywords.get("properties").and_then(Value::as_object);
                let Some(object) = value.as_object() else {
                    continue;
                };
                for (name, field) in object {
                    if declared.is_some_and(|d| d.contains_key(name)) {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => out.push(format!("{path}: {name} is not allowed")),
                        Value::Bool(true) => {}
                        schema => check(root, schema, field, &format!("{path}.{name}"), out),
                    }
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    check(root, rule, item, &format!("{path}[{i}]"), out);
                }
            }
            other => out.push(format!(
                "{path}: the check does not know the keyword {other}"
            )),
        }
    }
}

fn resolve<'a>(root: &'a Value, reference: &Value) -> Option<&'a Value> {
    let name = reference.as_str()?.strip_prefix("#/$defs/")?;
    root.get("$defs")?.get(name)
}

fn has_type(value: &Value, wanted: &str) -> bool {
    match wanted {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_u64() || value.is_i64(),
        _ => false,
    }
}
