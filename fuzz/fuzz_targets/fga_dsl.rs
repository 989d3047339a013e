//! Any bytes through OpenFGA's DSL parser and validator, the JSON model
//! reader, fga.mod and store-file parsing: nothing may panic, and a model
//! that parses must format to DSL without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdict_fga_lang::model::AuthorizationModel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = verdict_fga_lang::parse_dsl(text);
    if let Ok(parsed) = verdict_fga_lang::parse_dsl_syntax(text) {
        let _ = verdict_fga_lang::to_dsl(&parsed.model);
        let _ = verdict_fga_lang::validate_json(&parsed.model);
    }
    if let Ok(model) = AuthorizationModel::from_json(text) {
        let _ = verdict_fga_lang::validate_json(&model);
        let _ = verdict_fga_lang::to_dsl(&model);
        let _ = model.to_json_pretty();
    }
    let _ = verdict_fga_lang::modules::parse_mod_file(text);
    let _ = verdict_fga_lang::store_file::check_store_yaml(text);
});
