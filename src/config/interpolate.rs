//! `${VAR}` interpolation in config string values.
//!
//! It runs on each scalar after YAML parsing, not on the raw text, so that every error still
//! points at the scalar's own line and column, and an environment value can never change the
//! YAML structure (a value containing `: ` or a newline stays one string).

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${NAME}` names a variable that is not set and has no `:-default`.
    #[error("environment variable {0} is not set (use ${{{0}:-default}} for a default)")]
    Unset(String),
    /// `${` without a closing `}`.
    #[error("unterminated ${{...}} (write $$ for a literal $)")]
    Unterminated,
    /// The text between `${` and `}` (or before `:-`) is not a variable name.
    #[error("invalid variable name {0:?} in ${{...}}")]
    BadName(String),
}

/// Expands `${NAME}` and `${NAME:-default}` in `input` using `env`.
///
/// `$$` is a literal `$`; a `$` not followed by `{` or `$` is kept as is (so values such as
/// passwords with a lone `$` need no escaping). `:-default` applies when the variable is unset or
/// empty, as in POSIX shells. Names are `[A-Za-z_][A-Za-z0-9_]*`; defaults are not expanded again.
pub fn interpolate(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, InterpolateError> {
    // Fast path: most values contain no `$` at all.
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(pos);
        out.push_str(before);
        let after = from_dollar.get(1..).unwrap_or("");
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let close = body_and_tail.find('}').ok_or(InterpolateError::Unterminated)?;
            let (body, tail) = body_and_tail.split_at(close);
            out.push_str(&expand(body, env)?);
            rest = tail.get(1..).unwrap_or("");
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands the inside of one `${...}`.
fn expand(body: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, InterpolateError> {
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if !is_var_name(name) {
        return Err(InterpolateError::BadName(name.to_owned()));
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(InterpolateError::Unset(name.to_owned())),
    }
}

/// True for a POSIX-style environment variable name.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOST" => Some("10.0.0.1".to_owned()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("a: b\n- c ${HOST}".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        assert_eq!(interpolate("plain", &env).unwrap(), "plain");
        assert_eq!(interpolate("${HOST}:9000", &env).unwrap(), "10.0.0.1:9000");
        assert_eq!(interpolate("${PORT:-9000}", &env).unwrap(), "9000");
        assert_eq!(interpolate("${HOST:-x}", &env).unwrap(), "10.0.0.1");
        assert_eq!(interpolate("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(interpolate("${X:-}", &env).unwrap(), "");
        assert_eq!(interpolate("cost $$5 and $x and $", &env).unwrap(), "cost $5 and $x and $");
        assert_eq!(interpolate("$${HOST}", &env).unwrap(), "${HOST}");
        // A value is inserted verbatim: no recursive expansion, no structure.
        assert_eq!(interpolate("${TRICKY}", &env).unwrap(), "a: b\n- c ${HOST}");
        assert_eq!(interpolate("é${HOST}ü", &env).unwrap(), "é10.0.0.1ü");
    }

    #[test]
    fn reports_unset_unterminated_and_bad_names() {
        assert_eq!(interpolate("x ${NOPE} y", &env), Err(InterpolateError::Unset("NOPE".into())));
        assert_eq!(interpolate("${HOST", &env), Err(InterpolateError::Unterminated));
        assert_eq!(interpolate("${}", &env), Err(InterpolateError::BadName(String::new())));
        assert_eq!(interpolate("${1A}", &env), Err(InterpolateError::BadName("1A".into())));
        assert_eq!(interpolate("${A-B}", &env), Err(InterpolateError::BadName("A-B".into())));
        let msg = InterpolateError::Unset("NOPE".into()).to_string();
        assert!(msg.contains("NOPE") && msg.contains("${NOPE:-default}"), "{msg}");
    }
}
