//! Bounds on schema size so that no schema can exhaust the server.

/// Limits applied while parsing and compiling a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Largest schema text accepted, in bytes. Default = 4 MiB.
    pub max_source_bytes: usize,
    /// Most definitions plus caveats. Default = 10,000.
    pub max_definitions: usize,
    /// Most relations plus permissions in one definition. Default = 1,000.
    pub max_relations_per_definition: usize,
    /// Deepest parenthesis nesting of a permission expression. Default = 64.
    pub max_expression_depth: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        SchemaLimits {
            max_source_bytes: 4 << 20,
            max_definitions: 10_000,
            max_relations_per_definition: 1_000,
            max_expression_depth: 64,
        }
    }
}
