//! The `command` kind's contract: the operator names each command a worker may run and fixes its
//! program and arguments (`workers.commands`); a job names one command and gives values for the
//! template's named parameters only, so no job chooses a program, an option or an argument the
//! operator did not write.
//!
//! ```toml
//! [workers.commands.report]
//! program = "/usr/local/bin/make-report"
//! args = ["--month", "{month}", "--team", "{team}"]
//! ```
//!
//! A job's payload: `{"command": "report", "params": {"month": "2026-11", "team": "ops"}}`.
//! A placeholder is `{name}` (letters, digits, `_`), replaced by its value inside the argument
//! it stands in; every placeholder needs a value and every value a placeholder. A value may not
//! start with `-`, `+` or `@` (options, and the response files and `+cmd` arguments some
//! programs read), hold a `..` path segment, nor hold control characters. What a value means is
//! up to the program: a template hands values only to arguments whose every value is harmless.
//!
//! task-svc checks the payload's shape when a job is created ([`CommandRequest::parse`]); the
//! worker renders it against its own templates ([`CommandTemplate::render`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Most parameters a job may give.
pub const MAX_PARAMS: usize = 32;
/// Longest parameter value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Most arguments a template may have.
pub const MAX_ARGS: usize = 100;

/// One command an operator allows: a program (absolute path) and its argument template.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommandTemplate {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// What a `command` job asks for: a command's name and its parameters' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    pub command: String,
    pub params: BTreeMap<String, String>,
}

/// One piece of a template argument.
enum Piece<'a> {
    Text(&'a str),
    Param(&'a str),
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits a template argument into text and `{name}` placeholders.
fn pieces(arg: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("{arg:?} has a `}}` without its `{{`"));
        }
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("{arg:?} has a `{{` without its `}}`"))?;
        let name = &rest[open + 1..close];
        if !is_name(name) || name.contains('-') {
            return Err(format!(
                "{arg:?}: {{{name}}} is not a parameter name (letters, digits, `_`)"
            ));
        }
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        out.push(Piece::Param(name));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

impl CommandTemplate {
    /// Whether the operator's template can be used: an absolute program, well-formed
    /// placeholders, at most [`MAX_ARGS`] arguments.
    pub fn validate(&self) -> Result<(), String> {
        if !self.program.starts_with('/') {
            return Err(format!(
                "program {:?} must be an absolute path",
                self.program
            ));
        }
        if self.args.len() > MAX_ARGS {
            return Err(format!("at most {MAX_ARGS} arguments"));
        }
        for arg in &self.args {
            pieces(arg)?;
        }
        Ok(())
    }

    /// The template's parameter names.
    pub fn params(&self) -> Vec<&str> {
        let mut names: Vec<&str> = (self.args.iter())
            .flat_map(|arg| pieces(arg).unwrap_or_default())
            .filter_map(|piece| match piece {
                Piece::Param(name) => Some(name),
                Piece::Text(_) => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The arguments with `params` in their placeholders; every placeholder needs a value and
    /// every value a placeholder.
    pub fn render(&self, params: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        let wanted = self.params();
        if let Some(unknown) = params.keys().find(|k| !wanted.contains(&k.as_str())) {
            return Err(format!(
                "params.{unknown} is not a parameter of this command (it takes: {})",
                wanted.join(", ")
            ));
        }
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            let mut rendered = String::new();
            for piece in pieces(arg)? {
                match piece {
                    Piece::Text(text) => rendered.push_str(text),
                    Piece::Param(name) => rendered.push_str(
                        params
                            .get(name)
                            .ok_or_else(|| format!("params.{name} is missing"))?,
                    ),
                }
            }
            args.push(rendered);
        }
        Ok(args)
    }
}

impl CommandRequest {
    /// A `command` job's payload, checked: `command` a name, `params` (optional) an object of at
    /// most [`MAX_PARAMS`] string values of at most [`MAX_VALUE_BYTES`], none starting with `-`,
    /// `+` or `@`, holding a `..` segment or control characters.
    pub fn parse(payload: &Value) -> Result<Self, String> {
        let object = payload
            .as_object()
            .ok_or("the payload must be an object: {\"command\": …, \"params\": {…}}")?;
        if let Some(other) = object.keys().find(|k| *k != "command" && *k != "params") {
            return Err(format!(
                "payload.{other} is not accepted: a command job names an operator's command and its params"
            ));
        }
        let command = object
            .get("command")
            .and_then(Value::as_str)
            .filter(|name| is_name(name))
            .ok_or("payload.command must name a command of workers.commands")?
            .to_string();
        let mut params = BTreeMap::new();
        match object.get("params") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                if given.len() > MAX_PARAMS {
                    return Err(format!("payload.params: at most {MAX_PARAMS}"));
                }
                for (name, value) in given {
                    if !is_name(name) || name.contains('-') {
                        return Err(
                            "payload.params: names are letters, digits and `_`, at most 64".into(),
                        );
                    }
                    let value = value
                        .as_str()
                        .ok_or(format!("payload.params.{name} must be a string"))?;
                    check_value(name, value)?;
                    params.insert(name.clone(), value.to_string());
                }
            }
            Some(_) => return Err("payload.params must be an object of strings".into()),
        }
        Ok(Self { command, params })
    }
}

fn check_value(name: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "payload.params.{name}: at most {MAX_VALUE_BYTES} bytes"
        ));
    }
    if value.starts_with(['-', '+', '@']) {
        return Err(format!(
            "payload.params.{name} may not start with `-`, `+` or `@`: a value never becomes an option"
        ));
    }
    if value.split(['/', '\\']).any(|segment| segment == "..") {
        return Err(format!(
            "payload.params.{name} may not hold a `..` path segment"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "payload.params.{name} may not hold control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(args: &[&str]) -> CommandTemplate {
        CommandTemplate {
            program: "/bin/echo".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_fill_their_placeholders_and_nothing_else() {
        let t = template(&["--", "{input}", "size={w}x{h}", "literal"]);
        assert_eq!(t.params(), ["h", "input", "w"]);
        let args = t
            .render(&params(&[("input", "a b;c"), ("w", "4"), ("h", "3")]))
            .unwrap();
        assert_eq!(args, ["--", "a b;c", "size=4x3", "literal"]);
        assert!(t
            .render(&params(&[("input", "a")]))
            .unwrap_err()
            .contains("params.w is missing"));
        let extra = params(&[("input", "a"), ("w", "1"), ("h", "1"), ("exec", "x")]);
        assert!(t.render(&extra).unwrap_err().contains("params.exec"));
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(template(&["{unclosed"]).validate().is_err());
        assert!(template(&["closed}"]).validate().is_err());
        assert!(template(&["{not a name}"]).validate().is_err());
        let relative = CommandTemplate {
            program: "echo".into(),
            args: vec![],
        };
        assert!(relative.validate().is_err());
        assert!(template(&["{ok}", "x{ok_2}y"]).validate().is_ok());
    }

    #[test]
    fn a_payload_gives_a_name_and_plain_values_only() {
        let ok = CommandRequest::parse(&json!({"command": "thumb", "params": {"input": "a.jpg"}}));
        assert_eq!(ok.unwrap().params["input"], "a.jpg");
        for bad in [
            json!({"program": "/bin/sh", "args": ["-c", "id"]}),
            json!({"command": "thumb", "args": ["x"]}),
            json!({"command": "../sh"}),
            json!({"command": "thumb", "params": {"input": "-exec"}}),
            json!({"command": "thumb", "params": {"input": "@/etc/passwd"}}),
            json!({"command": "thumb", "params": {"input": "+x"}}),
            json!({"command": "thumb", "params": {"input": "a/../../etc"}}),
            json!({"command": "thumb", "params": {"input": "a\nb"}}),
            json!({"command": "thumb", "params": {"input": 3}}),
            json!({"command": "thumb", "params": {"input": "x".repeat(MAX_VALUE_BYTES + 1)}}),
        ] {
            assert!(CommandRequest::parse(&bad).is_err(), "{bad}");
        }
    }
}
