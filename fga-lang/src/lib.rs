//! OpenFGA's modeling language for Verdict: the JSON authorization model
//! ([`model`]), the DSL (`parse_dsl`, `to_dsl`), semantic validation, the
//! modular `fga.mod` form and `fga model test` store files.
//!
//! Behaviour follows github.com/openfga/language (pkg/go); error messages,
//! positions and error types match upstream so OpenFGA users see the same
//! diagnostics.

pub mod model;
