//! Collector for model-constraint violations, formatted exactly as AWS's Coral validator:
//!
//! `2 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: Member
//! must have value greater than or equal to 1; Value 'a b' at 'streamName' failed to satisfy
//! constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+`
//!
//! Facts (from kinesalite's tests, recorded against AWS): at most [`MAX_REPORTED`] violations
//! are listed and the count says how many were listed; a member's own constraints are checked
//! before its children; within a member the order is not-null, pattern, min length, max
//! length, min value, max value, enum; list members are addressed `records.1.member.x`
//! (1-based); lengths of strings count UTF-16 units (Java `String.length()`); blobs print as
//! `java.nio.HeapByteBuffer[pos=0 lim=N cap=N]`, lists as `[a, b]`, maps as `{k=v}`,
//! structures as `<java class>@<hash>`. Member order is decided by the code generator.

use std::collections::BTreeMap;
use std::fmt::{self, Debug, Write as _};

pub use regex::Regex;

use crate::blob::Blob;
use crate::timestamp::Timestamp;

/// AWS lists at most this many violations (the 501-record PutRecords case lists 10).
pub const MAX_REPORTED: usize = 10;

/// Model-constraint validation of a generated input shape. `path` is the AWS path of `self`
/// (`""` at the top, `records.1.member` inside a list).
pub trait Validate {
    fn validate(&self, path: &str, errors: &mut ValidationErrors);

    /// Validates a top-level input: `Ok(())` or the ValidationException message.
    fn validate_input(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.validate("", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// How AWS prints a member's value inside `Value '<here>' at ...`.
pub trait ValidationValue {
    fn render(&self) -> String;
}

impl ValidationValue for String {
    fn render(&self) -> String {
        self.clone()
    }
}

impl ValidationValue for str {
    fn render(&self) -> String {
        self.to_owned()
    }
}

impl ValidationValue for i64 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ValidationValue for i32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ValidationValue for bool {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ValidationValue for f64 {
    fn render(&self) -> String {
        // Java's Double.toString always shows a fraction.
        if self.fract() == 0.0 && self.is_finite() {
            format!("{self:.1}")
        } else {
            self.to_string()
        }
    }
}

impl ValidationValue for Blob {
    fn render(&self) -> String {
        let len = self.len();
        format!("java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]")
    }
}

impl ValidationValue for Timestamp {
    fn render(&self) -> String {
        self.to_json_seconds()
    }
}

impl<T: ValidationValue> ValidationValue for Vec<T> {
    fn render(&self) -> String {
        let items: Vec<String> = self.iter().map(ValidationValue::render).collect();
        format!("[{}]", items.join(", "))
    }
}

impl<V: ValidationValue> ValidationValue for BTreeMap<String, V> {
    fn render(&self) -> String {
        let entries: Vec<String> = self
            .iter()
            .map(|(key, value)| format!("{key}={}", value.render()))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }
}

/// Renders a structure the way Java's `Object.toString()` does: `class@hash`. The hash is a
/// stable FNV-1a of the value (AWS's is an identity hash; nobody can match it).
pub fn render_java_object<T: Debug>(java_class: &str, value: &T) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in format!("{value:?}").bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{java_class}@{hash:08x}")
}

/// Length as the model's `min`/`max` count it.
pub trait ValidationLength {
    fn validation_length(&self) -> usize;
}

impl ValidationLength for String {
    /// Java `String.length()`: UTF-16 code units.
    fn validation_length(&self) -> usize {
        self.encode_utf16().count()
    }
}

impl ValidationLength for Blob {
    fn validation_length(&self) -> usize {
        self.len()
    }
}

impl<T> ValidationLength for Vec<T> {
    fn validation_length(&self) -> usize {
        self.len()
    }
}

impl<V> ValidationLength for BTreeMap<String, V> {
    fn validation_length(&self) -> usize {
        self.len()
    }
}

/// `<parent>.<member>`, or `<member>` at the top level.
pub fn member_path(parent: &str, member: &str) -> String {
    if parent.is_empty() {
        member.to_owned()
    } else {
        format!("{parent}.{member}")
    }
}

/// Path of the `index`-th (0-based) element of the list at `list_path`: `records.1.member`.
pub fn list_member_path(list_path: &str, index: usize) -> String {
    format!("{list_path}.{}.member", index + 1)
}

/// Which element-level rule a collection violates (reported once, at the collection's path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementRule {
    /// A list of simple values: `Member must satisfy constraint: [...]`.
    ListMember,
    /// `Map keys must satisfy constraint: [...]`.
    MapKey,
    /// `Map value must satisfy constraint: [...]`.
    MapValue,
}

impl ElementRule {
    fn prefix(self) -> &'static str {
        match self {
            Self::ListMember => "Member must satisfy constraint",
            Self::MapKey => "Map keys must satisfy constraint",
            Self::MapValue => "Map value must satisfy constraint",
        }
    }
}

/// The violations found in one request, in the order found.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    violations: Vec<String>,
}

impl Debug for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ValidationErrors {}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn len(&self) -> usize {
        self.violations.len()
    }

    /// True once [`MAX_REPORTED`] violations are recorded; further ones are dropped.
    pub fn is_full(&self) -> bool {
        self.violations.len() >= MAX_REPORTED
    }

    /// The individual `Value ... failed to satisfy constraint: ...` entries.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Records one violation. `rendered` is `None` for a null value (`Value null at ...`).
    pub fn push(&mut self, rendered: Option<&str>, path: &str, constraint: &str) {
        if self.is_full() {
            return;
        }
        let mut entry = String::with_capacity(64 + path.len() + constraint.len());
        match rendered {
            Some(value) => {
                let _ = write!(entry, "Value '{value}' at '{path}'");
            }
            None => {
                let _ = write!(entry, "Value null at '{path}'");
            }
        }
        let _ = write!(entry, " failed to satisfy constraint: {constraint}");
        self.violations.push(entry);
    }

    /// The ValidationException message: `N validation error(s) detected: a; b`.
    pub fn message(&self) -> String {
        let count = self.violations.len();
        let noun = if count == 1 { "error" } else { "errors" };
        format!(
            "{count} validation {noun} detected: {}",
            self.violations.join("; ")
        )
    }

    /// `Member must not be null`.
    pub fn required<T>(&mut self, value: &Option<T>, parent: &str, member: &str) {
        if value.is_none() {
            self.push(
                None,
                &member_path(parent, member),
                "Member must not be null",
            );
        }
    }

    /// `Member must satisfy regular expression pattern: <pattern>`; `regex` is the anchored
    /// compilation of `pattern`.
    pub fn pattern(
        &mut self,
        value: &str,
        regex: &Regex,
        pattern: &str,
        parent: &str,
        member: &str,
    ) {
        if !regex.is_match(value) {
            self.push(
                Some(value),
                &member_path(parent, member),
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    /// `Member must have length greater than or equal to <min>`.
    pub fn min_length<V: ValidationLength + ValidationValue>(
        &mut self,
        value: &V,
        min: usize,
        parent: &str,
        member: &str,
    ) {
        if value.validation_length() < min && !self.is_full() {
            self.push(
                Some(&value.render()),
                &member_path(parent, member),
                &format!("Member must have length greater than or equal to {min}"),
            );
        }
    }

    /// `Member must have length less than or equal to <max>`.
    pub fn max_length<V: ValidationLength + ValidationValue>(
        &mut self,
        value: &V,
        max: usize,
        parent: &str,
        member: &str,
    ) {
        if value.validation_length() > max && !self.is_full() {
            self.push(
                Some(&value.render()),
                &member_path(parent, member),
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// `Member must have value greater than or equal to <min>`.
    pub fn min_value(&mut self, value: i64, min: i64, parent: &str, member: &str) {
        if value < min {
            self.push(
                Some(&value.to_string()),
                &member_path(parent, member),
                &format!("Member must have value greater than or equal to {min}"),
            );
        }
    }

    /// `Member must have value less than or equal to <max>`.
    pub fn max_value(&mut self, value: i64, max: i64, parent: &str, member: &str) {
        if value > max {
            self.push(
                Some(&value.to_string()),
                &member_path(parent, member),
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    /// `Member must satisfy enum value set: [A, B]`.
    pub fn enum_value(&mut self, value: &str, allowed: &[&str], parent: &str, member: &str) {
        if !allowed.contains(&value) {
            self.push(
                Some(value),
                &member_path(parent, member),
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// One violation for a collection whose elements (keys, values) break their own shape's
    /// constraints: `Map keys must satisfy constraint: [Member must have length less than or
    /// equal to 128, Member must have length greater than or equal to 1]`. `rules` is the
    /// bracketed list the generator precomputed.
    pub fn elements<V: ValidationValue + ?Sized>(
        &mut self,
        collection: &V,
        all_valid: bool,
        rule: ElementRule,
        rules: &str,
        parent: &str,
        member: &str,
    ) {
        if !all_valid && !self.is_full() {
            self.push(
                Some(&collection.render()),
                &member_path(parent, member),
                &format!("{}: [{rules}]", rule.prefix()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_many_violations_are_formatted_like_aws() {
        let mut errors = ValidationErrors::new();
        errors.pattern(
            "a b",
            &Regex::new("^(?:[a-zA-Z0-9_.-]+)$").unwrap(),
            "[a-zA-Z0-9_.-]+",
            "",
            "streamName",
        );
        assert_eq!(
            errors.message(),
            "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        );
        errors.required::<i64>(&None, "", "shardCount");
        assert_eq!(
            errors.message(),
            "2 validation errors detected: Value 'a b' at 'streamName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value null at 'shardCount' \
             failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn at_most_ten_violations_are_listed() {
        let mut errors = ValidationErrors::new();
        for index in 0..25 {
            errors.min_value(0, 1, "", &format!("x{index}"));
        }
        assert_eq!(errors.len(), MAX_REPORTED);
        assert!(
            errors
                .message()
                .starts_with("10 validation errors detected: ")
        );
    }

    #[test]
    fn values_render_like_java() {
        assert_eq!(
            Blob::from(vec![0u8; 3]).render(),
            "java.nio.HeapByteBuffer[pos=0 lim=3 cap=3]"
        );
        assert_eq!(vec!["a".to_owned(), "b".to_owned()].render(), "[a, b]");
        let map: BTreeMap<String, String> = [
            ("k".to_owned(), "v".to_owned()),
            ("l".to_owned(), "w".to_owned()),
        ]
        .into();
        assert_eq!(map.render(), "{k=v, l=w}");
        assert_eq!(0i64.render(), "0");
    }

    #[test]
    fn string_length_counts_utf16_units() {
        assert_eq!("a😀".to_owned().validation_length(), 3);
    }

    #[test]
    fn element_rules_report_the_whole_collection() {
        let mut errors = ValidationErrors::new();
        let map: BTreeMap<String, String> = [(String::new(), "v".to_owned())].into();
        errors.elements(
            &map,
            false,
            ElementRule::MapKey,
            "Member must have length less than or equal to 128, Member must have length greater than or equal to 1",
            "",
            "tags",
        );
        assert_eq!(
            errors.violations()[0],
            "Value '{=v}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: \
             [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]"
        );
    }
}
