//! Name grammars shared by the model validator and the server: type,
//! relation, condition and object-id rules of upstream's validate-rules.ts.

/// `^[^:#@\*\s]{1,254}$` — the rule as upstream prints it in messages.
pub const TYPE_RULE: &str = r"^[^:#@\*\s]{1,254}$";
/// `^[^:#@\*\s]{1,50}$`
pub const RELATION_RULE: &str = r"^[^:#@\*\s]{1,50}$";

fn plain(s: &str, max: usize, forbidden: &[char]) -> bool {
    let n = s.chars().count();
    (1..=max).contains(&n)
        && !s
            .chars()
            .any(|c| c.is_whitespace() || forbidden.contains(&c))
}

/// A type name: 1–254 characters, none of `:#@*` or whitespace.
pub fn validate_type_name(name: &str) -> bool {
    plain(name, 254, &[':', '#', '@', '*'])
}

/// A relation name: 1–50 characters, none of `:#@*` or whitespace.
pub fn validate_relation_name(name: &str) -> bool {
    plain(name, 50, &[':', '#', '@', '*'])
}

/// A condition name: 1–50 characters, no `*` or whitespace.
pub fn validate_condition_name(name: &str) -> bool {
    plain(name, 50, &['*'])
}

/// An object id: `[^#:\s*][a-zA-Z0-9_|*@.+/\-]*`.
pub fn validate_object_id(id: &str) -> bool {
    let mut it = id.chars();
    let Some(first) = it.next() else {
        return false;
    };
    if first.is_whitespace() || matches!(first, '#' | ':' | '*') {
        return false;
    }
    it.all(|c| c.is_ascii_alphanumeric() || "_|*@.+/-".contains(c))
}

/// `type:id` with a valid type and id, 2–256 characters, no whitespace.
pub fn validate_object(object: &str) -> bool {
    let n = object.chars().count();
    if !(2..=256).contains(&n) || object.chars().any(char::is_whitespace) {
        return false;
    }
    match object.split_once(':') {
        Some((t, id)) => validate_type_name(t) && validate_object_id(id),
        None => false,
    }
}

/// A user: `type:id`, `type:id#relation` or `type:*`.
pub fn validate_user(user: &str) -> bool {
    if let Some((obj, rel)) = user.split_once('#') {
        return obj
            .split_once(':')
            .is_some_and(|(t, id)| validate_type_name(t) && validate_object_id(id))
            && validate_relation_name(rel);
    }
    if let Some(t) = user.strip_suffix(":*") {
        if validate_type_name(t) {
            return true;
        }
    }
    validate_object(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_object_id("a-b/c|d.e+f@g"));
        assert!(!validate_object_id("*abc"));
        assert!(!validate_object_id("a b"));
        assert!(validate_type_name("a.b/c"));
        assert!(!validate_type_name("a:b"));
        assert!(!validate_relation_name(&"x".repeat(51)));
        assert!(validate_user("user:*"));
        assert!(validate_user("group:eng#member"));
        assert!(!validate_user("group"));
    }
}
