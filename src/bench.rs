//! `verdict bench`: a gRPC load generator for a running server.
//!
//! ```text
//!  bench load  : workload file ──WriteSchema + ImportRelationships──▶ server
//!  bench run   : per concurrency: ceiling (grpc.health Check) then checks
//!                (cold | warm | mixed), then lookups and writes ──▶ JSON
//!  bench report: JSON reports ──▶ Markdown table + SVG chart
//! ```
//!
//! Latencies go into HDR histograms (1 µs .. 60 s, 3 significant digits).

pub mod answers;
pub mod driver;
pub mod propagation;
pub mod report;
pub mod runner;
pub mod write_load;
