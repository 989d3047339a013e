#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
//! Upstream's modular-model cases: fga.mod parsing and combining module
//! files (transformer-module/*).

mod common;

use serde::Deserialize;
use verdict_fga_lang::model::AuthorizationModel;
use verdict_fga_lang::modules::{combine_modules, modules_of, parse_mod_file, ModuleFile};
use verdict_fga_lang::{to_dsl, to_dsl_with, ErrorKind, ToDslOptions};

#[derive(Deserialize, Default)]
struct StartEnd {
    #[serde(default)]
    start: usize,
    #[serde(default)]
    end: usize,
}

#[derive(Deserialize)]
struct ExpectedError {
    msg: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    line: StartEnd,
    #[serde(default)]
    column: StartEnd,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ModCase {
    name: String,
    #[serde(rename = "modFile")]
    mod_file: String,
    #[serde(default)]
    json: String,
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    expected_errors: Vec<ExpectedError>,
}

#[test]
fn fga_mod_transformer_cases() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let file = "fga-mod-transformer-cases.yaml";
    let cases: Vec<ModCase> =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
    let results: Vec<_> = cases
        .iter()
        .filter(|c| !c.skip)
        .map(|c| {
            let r = match parse_mod_file(&c.mod_file) {
                Ok(m) if c.expected_errors.is_empty() => {
                    let want: serde_json::Value = serde_json::from_str(&c.json).unwrap();
                    let got = serde_json::to_value(&m).unwrap();
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!("got {got:#}"))
                    }
                }
                Ok(m) => Err(format!("parsed {m:?}, expected errors")),
                Err(e) => {
                    let got: Vec<_> =
                        e.0.iter()
                            .map(|e| {
                                (
                                    e.msg.clone(),
                                    e.line.start,
                                    e.line.end,
                                    e.column.start,
                                    e.column.end,
                                )
                            })
                            .collect();
                    let want: Vec<_> = c
                        .expected_errors
                        .iter()
                        .map(|e| {
                            (
                                e.msg.clone(),
                                e.line.start,
                                e.line.end,
                                e.column.start,
                                e.column.end,
                            )
                        })
                        .collect();
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!("got {got:?}\nwant {want:?}"))
                    }
                }
            };
            (c.name.clone(), r)
        })
        .collect();
    common::report(file, &results, &[]);
}

fn read_module_dir(dir: &std::path::Path) -> Vec<ModuleFile> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "fga") {
                files.push(ModuleFile {
                    name: p.strip_prefix(dir).unwrap().display().to_string(),
                    contents: std::fs::read_to_string(&p).unwrap(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

#[test]
fn transformer_module_cases() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let mut results = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(dir.join("transformer-module"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for case in dirs {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(case.join(f)).ok();
        let r = (|| -> Result<(), String> {
            if !case.join("module").is_dir() {
                // JSON only: the module list read from the model.
                let m = AuthorizationModel::from_json(&read("authorization-model.json").unwrap())
                    .unwrap();
                let want: Vec<String> =
                    serde_json::from_str(&read("expected_modules.json").unwrap()).unwrap();
                return if modules_of(&m) == want {
                    Ok(())
                } else {
                    Err(format!("modules {:?}", modules_of(&m)))
                };
            }
            let files = read_module_dir(&case.join("module"));
            let got = combine_modules(&files, "1.2");
            if let Some(errs) = read("expected_errors.json") {
                let want: Vec<ExpectedError> = serde_json::from_str(&errs).unwrap();
                let got = match got {
                    Ok(_) => return Err("combined without errors".into()),
                    Err(e) => e.0,
                };
                let fmt_got: Vec<String> = got
                    .iter()
                    .map(|e| {
                        let kind = if e.kind == ErrorKind::Syntax {
                            "syntax"
                        } else {
                            ""
                        };
                        format!(
                            "{} {} {}:{}-{}:{} {} {}",
                            e.file,
                            e.msg,
                            e.line.start,
                            e.column.start,
                            e.line.end,
                            e.column.end,
                            kind,
                            e.error_type
                        )
                    })
                    .collect();
                let fmt_want: Vec<String> = want
                    .iter()
                    .map(|e| {
                        let et = e
                            .metadata
                            .as_ref()
                            .and_then(|m| m.get("errorType"))
                            .and_then(|v| v.as_str())
                            .unwrap_or("");
                        format!(
                            "{} {} {}:{}-{}:{} {} {}",
                            e.file,
                            e.msg,
                            e.line.start,
                            e.column.start,
                            e.line.end,
                            e.column.end,
                            e.kind,
                            et
                        )
                    })
                    .collect();
                let (mut a, mut b) = (fmt_got.clone(), fmt_want.clone());
                a.sort();
                b.sort();
                return if a == b {
                    Ok(())
                } else {
                    Err(format!("got {fmt_got:#?}\nwant {fmt_want:#?}"))
                };
            }
            let m = got.map_err(|e| e.to_string())?;
            let want: serde_json::Value =
                serde_json::from_str(&read("authorization-model.json").unwrap()).unwrap();
            if m.to_json_value() != want {
                return Err(format!("model differs: {}", m.to_json_pretty()));
            }
            let want_modules: Vec<String> =
                serde_json::from_str(&read("expected_modules.json").unwrap()).unwrap();
            if modules_of(&m) != want_modules {
                return Err(format!("modules {:?}", modules_of(&m)));
            }
            if let Some(want) = read("combined.fga") {
                let got = to_dsl(&m).map_err(|e| e.to_string())?;
                if got != want {
                    return Err(format!("combined.fga differs:\n{got}"));
                }
            }
            if let Some(want) = read("combined-sourceinfo.fga") {
                let got = to_dsl_with(
                    &m,
                    ToDslOptions {
                        include_source_information: true,
                    },
                )
                .map_err(|e| e.to_string())?;
                if got != want {
                    return Err(format!("combined-sourceinfo.fga differs:\n{got}"));
                }
            }
            Ok(())
        })();
        results.push((name, r));
    }
    common::report("transformer-module/*", &results, &[]);
}
