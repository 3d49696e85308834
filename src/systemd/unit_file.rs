//! A unit file or drop-in as sections of `Key=value` lines, and quoting for command lines.

use std::fmt;

/// One line of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Comment(String),
    Setting { key: String, value: String },
}

/// One `[Section]` of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    name: String,
    lines: Vec<Line>,
}

/// A unit file or drop-in: leading comment lines, then sections in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFile {
    header: Vec<String>,
    sections: Vec<Section>,
}

impl UnitFile {
    /// Adds a comment line above the first section.
    pub fn header(&mut self, comment: impl Into<String>) -> &mut Self {
        self.header.push(comment.into());
        self
    }

    fn section_mut(&mut self, section: &str) -> &mut Section {
        let index = match self.sections.iter().position(|s| s.name == section) {
            Some(index) => index,
            None => {
                self.sections.push(Section {
                    name: section.to_owned(),
                    lines: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[index]
    }

    /// Appends `key=value` to `section`, creating the section at the end when it is new.
    pub fn set(&mut self, section: &str, key: &str, value: impl Into<String>) -> &mut Self {
        self.section_mut(section).lines.push(Line::Setting {
            key: key.to_owned(),
            value: value.into(),
        });
        self
    }

    /// Appends a comment line to `section`.
    pub fn comment(&mut self, section: &str, comment: impl Into<String>) -> &mut Self {
        self.section_mut(section)
            .lines
            .push(Line::Comment(comment.into()));
        self
    }

    /// Returns the values of `key` in `section`, in file order.
    pub fn values<'a>(&'a self, section: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.sections
            .iter()
            .filter(move |s| s.name == section)
            .flat_map(|s| s.lines.iter())
            .filter_map(move |line| match line {
                Line::Setting { key: k, value } if k == key => Some(value.as_str()),
                _ => None,
            })
    }
}

impl fmt::Display for UnitFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for comment in &self.header {
            writeln!(f, "# {comment}")?;
        }
        for (i, section) in self.sections.iter().enumerate() {
            if i > 0 || !self.header.is_empty() {
                writeln!(f)?;
            }
            writeln!(f, "[{}]", section.name)?;
            for line in &section.lines {
                match line {
                    Line::Comment(text) => writeln!(f, "# {text}")?,
                    Line::Setting { key, value } => writeln!(f, "{key}={value}")?,
                }
            }
        }
        Ok(())
    }
}

/// Quotes one word of an `ExecStart=` command line so systemd passes it through unchanged.
/// `%` becomes `%%` (specifiers) and `$` becomes `$$` (environment variables). A word with
/// white space, quotes, backslashes or control characters is put in double quotes with C escapes.
pub fn exec_word(word: &str) -> String {
    let expanded = word.replace('%', "%%").replace('$', "$$");
    let plain = !expanded.is_empty()
        && expanded != ";"
        && !expanded
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'));
    if plain {
        return expanded;
    }
    let mut quoted = String::with_capacity(expanded.len() + 2);
    quoted.push('"');
    for c in expanded.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Joins quoted words into an `ExecStart=` command line.
pub fn exec_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| exec_word(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sections_in_order() {
        let mut unit = UnitFile::default();
        unit.header("generated");
        unit.set("Unit", "Description", "x");
        unit.set("Service", "Type", "oneshot");
        unit.comment("Unit", "extra");
        unit.set("Unit", "After", "a.service");
        assert_eq!(
            unit.to_string(),
            "# generated\n\n[Unit]\nDescription=x\n# extra\nAfter=a.service\n\n[Service]\nType=oneshot\n"
        );
        assert_eq!(
            unit.values("Unit", "After").collect::<Vec<_>>(),
            ["a.service"]
        );
    }

    #[test]
    fn exec_words_plain() {
        assert_eq!(exec_word("/usr/bin/netnsctl"), "/usr/bin/netnsctl");
        assert_eq!(exec_word("lab-1.x_y"), "lab-1.x_y");
    }

    #[test]
    fn exec_words_escaped() {
        assert_eq!(exec_word("50%"), "50%%");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(exec_word("/my dir/a.toml"), "\"/my dir/a.toml\"");
        assert_eq!(exec_word("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(exec_word("a\nb"), "\"a\\nb\"");
        assert_eq!(exec_word(""), "\"\"");
        assert_eq!(exec_word(";"), "\";\"");
    }
}
