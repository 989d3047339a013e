//! `verdict serve` settings of the OpenFGA front door (flags and
//! `VERDICT_*` variables): OpenFGA's own server limits, with its defaults.

use std::time::Duration;

use clap::Args;

use super::config::parse_duration;

/// OpenFGA's default ListObjects deadline (`listObjectsDeadline`).
pub const DEFAULT_LIST_OBJECTS_DEADLINE: Duration = Duration::from_secs(3);
/// OpenFGA's default ListObjects result cap (`listObjectsMaxResults`).
pub const DEFAULT_LIST_OBJECTS_MAX_RESULTS: usize = 1000;

/// The flags (each also `VERDICT_<NAME>`).
#[derive(Debug, Clone, Default, Args)]
pub struct OpenfgaArgs {
    /// OpenFGA ListObjects / StreamedListObjects: answer what was found by
    /// then (partial, as OpenFGA does). Default = 3s
    #[arg(long, env = "VERDICT_OPENFGA_LIST_OBJECTS_DEADLINE", value_parser = parse_duration)]
    pub openfga_list_objects_deadline: Option<Duration>,
    /// OpenFGA ListObjects: most objects returned (StreamedListObjects has
    /// no cap; 0 = none). Default = 1000
    #[arg(long, env = "VERDICT_OPENFGA_LIST_OBJECTS_MAX_RESULTS")]
    pub openfga_list_objects_max_results: Option<usize>,
}

/// The resolved settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenfgaSettings {
    /// ListObjects deadline. Default = 3s
    pub list_objects_deadline: Duration,
    /// ListObjects result cap (0 = none). Default = 1000
    pub list_objects_max_results: usize,
}

impl Default for OpenfgaSettings {
    fn default() -> Self {
        OpenfgaSettings {
            list_objects_deadline: DEFAULT_LIST_OBJECTS_DEADLINE,
            list_objects_max_results: DEFAULT_LIST_OBJECTS_MAX_RESULTS,
        }
    }
}

impl OpenfgaArgs {
    /// The flags over the defaults.
    pub fn resolve(&self) -> OpenfgaSettings {
        let d = OpenfgaSettings::default();
        OpenfgaSettings {
            list_objects_deadline: self
                .openfga_list_objects_deadline
                .unwrap_or(d.list_objects_deadline),
            list_objects_max_results: self
                .openfga_list_objects_max_results
                .unwrap_or(d.list_objects_max_results),
        }
    }
}
