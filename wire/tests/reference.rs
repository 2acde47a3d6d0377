//! The mapping to OpenHarmony's abilityConnectionManager API (SPEC section 9): for each enum
//! that mirrors the API, the wire value is the API value plus one, UNSPECIFIED has no API value,
//! and the wire names are the API names behind the enum's prefix.

use std::fmt::Debug;

use acm_wire::pb::{CollaborateEventType, ConnectErrorCode, DisconnectReason, StartOptionParams};
use acm_wire::reference::ApiEnum;

/// Checks one API enum against the reference: `values` are the API's names and numbers in API
/// order, `prefix` the proto value names' prefix, `name` the generated `as_str_name`.
fn assert_mirrors_the_api<E>(
    api_name: &str,
    prefix: &str,
    values: &[(&str, i32)],
    name: fn(&E) -> &'static str,
) where
    E: ApiEnum + Debug + PartialEq,
{
    assert_eq!(E::API_NAME, api_name);
    assert_eq!(
        E::ALL.len(),
        values.len(),
        "{api_name}: one wire value per API value"
    );
    for (value, (api_value_name, api_value)) in E::ALL.iter().copied().zip(values) {
        let wire: i32 = value.into();
        assert_eq!(
            wire,
            api_value + 1,
            "{api_name}.{api_value_name}: wire = api + 1"
        );
        assert_eq!(value.api_value(), Some(*api_value));
        assert_eq!(E::from_api_value(*api_value), Some(value));
        assert_eq!(
            name(&value),
            format!("{prefix}_{api_value_name}"),
            "{api_name}.{api_value_name}: proto name"
        );
        assert!(E::try_from(wire).is_ok_and(|back| back == value));
    }

    // UNSPECIFIED, wire value 0, has no API value, and no API value maps to it.
    let unspecified = E::try_from(0).unwrap_or_else(|_| panic!("{api_name} has a zero"));
    assert_eq!(unspecified.api_value(), None);
    assert_eq!(name(&unspecified), format!("{prefix}_UNSPECIFIED"));
    assert!(!E::ALL.contains(&unspecified));
    for api_value in -1..=10 {
        assert_ne!(E::from_api_value(api_value), Some(unspecified));
    }

    // No API number outside the reference's maps to a wire value.
    let past_the_end = i32::try_from(values.len()).expect("small enum");
    for outside in [past_the_end, past_the_end + 1, -1, -2, i32::MAX, i32::MIN] {
        assert_eq!(
            E::from_api_value(outside),
            None,
            "{api_name} API value {outside}"
        );
    }
}

#[test]
fn connect_error_code_wire_value_is_api_value_plus_one() {
    assert_mirrors_the_api::<ConnectErrorCode>(
        "ConnectErrorCode",
        "CONNECT_ERROR_CODE",
        &[
            ("CONNECTED_SESSION_EXISTS", 0),
            ("PEER_APP_REJECTED", 1),
            ("LOCAL_WIFI_NOT_OPEN", 2),
            ("PEER_WIFI_NOT_OPEN", 3),
            ("PEER_ABILITY_NO_ONCOLLABORATE", 4),
            ("SYSTEM_INTERNAL_ERROR", 5),
        ],
        ConnectErrorCode::as_str_name,
    );
}

#[test]
fn disconnect_reason_wire_value_is_api_value_plus_one() {
    assert_mirrors_the_api::<DisconnectReason>(
        "DisconnectReason",
        "DISCONNECT_REASON",
        &[
            ("PEER_APP_CLOSE_COLLABORATION", 0),
            ("PEER_APP_EXIT", 1),
            ("NETWORK_DISCONNECTED", 2),
        ],
        DisconnectReason::as_str_name,
    );
}

#[test]
fn collaborate_event_type_wire_value_is_api_value_plus_one() {
    assert_mirrors_the_api::<CollaborateEventType>(
        "CollaborateEventType",
        "COLLABORATE_EVENT_TYPE",
        &[("SEND_FAILURE", 0), ("COLOR_SPACE_CONVERSION_FAILURE", 1)],
        CollaborateEventType::as_str_name,
    );
}

#[test]
fn start_option_params_wire_value_is_api_value_plus_one() {
    assert_mirrors_the_api::<StartOptionParams>(
        "StartOptionParams",
        "START_OPTION_PARAMS",
        &[("START_IN_FOREGROUND", 0)],
        StartOptionParams::as_str_name,
    );
}
