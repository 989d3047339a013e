//! Placeholder until the CEL evaluator lands (same session): every caveated
//! tuple is CONDITIONAL, naming all of its caveat's parameters as missing.
use crate::engine::outcome::Outcome;
use crate::schema::ir::Caveat;
#[derive(Debug, Clone)]
pub struct CompiledCaveat {
    name: String,
    params: Vec<String>,
}
impl CompiledCaveat {
    pub fn compile(caveat: &Caveat) -> Result<CompiledCaveat, CaveatError> {
        Ok(CompiledCaveat {
            name: caveat.name.to_string(),
            params: caveat.params.iter().map(|(n, _)| n.to_string()).collect(),
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn evaluate(
        &self,
        _stored: Option<&serde_json::Map<String, serde_json::Value>>,
        _request: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Outcome, CaveatError> {
        Ok(Outcome::conditional(self.params.iter().cloned()))
    }
}
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CaveatError {
    #[error("caveat `{caveat}` does not compile: {message}")]
    Compile { caveat: String, message: String },
}
