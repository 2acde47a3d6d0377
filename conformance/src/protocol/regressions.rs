//! Regression files: the seeds of the sequences that failed, replayed before new ones, in
//! proptest's format (`cc <seed> # shrinks to ...`), at a path chosen at run time.

use std::any::Any;
use std::fmt::Debug;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use proptest::test_runner::{FailurePersistence, PersistedSeed};

const HEADER: &str = "\
# Seeds of sequences the protocol suite found failing, replayed before any new sequence.
# Check this file in: every later run proves the failures stay fixed.
";

/// A regression file, or none; it remembers the seeds it saved in this run.
#[derive(Debug, Clone)]
pub struct RegressionFile {
    path: Option<PathBuf>,
    saved: Arc<Mutex<Vec<String>>>,
}

impl RegressionFile {
    /// The file at `path`, or none.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            saved: Arc::default(),
        }
    }

    /// The last seed saved in this run.
    pub fn last_saved(&self) -> Option<String> {
        self.saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last()
            .cloned()
    }
}

impl FailurePersistence for RegressionFile {
    fn load_persisted_failures2(&self, _source_file: Option<&'static str>) -> Vec<PersistedSeed> {
        let Some(text) = self
            .path
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
        else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| line.split('#').next())
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .filter_map(|line| line.parse().ok())
            .collect()
    }

    fn save_persisted_failure2(
        &mut self,
        _source_file: Option<&'static str>,
        seed: PersistedSeed,
        shrunken_value: &dyn Debug,
    ) {
        self.saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(seed.to_string());
        let Some(path) = &self.path else {
            return;
        };
        let is_new = !path.is_file();
        let shrunk = format!("{shrunken_value:?}").replace(['\n', '\r'], " ");
        let mut line = if is_new {
            HEADER.to_string()
        } else {
            String::new()
        };
        line.push_str(&format!("{seed} # shrinks to {shrunk}\n"));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), %err, "regression not saved");
        }
    }

    fn box_clone(&self) -> Box<dyn FailurePersistence> {
        Box::new(self.clone())
    }

    fn eq(&self, other: &dyn FailurePersistence) -> bool {
        other
            .as_any()
            .downcast_ref::<Self>()
            .is_some_and(|other| other.path == self.path)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
