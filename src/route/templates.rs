//! The user's route templates (`--routes FILE`): OpenAPI-style paths in which `{name}` stands
//! for one path segment, e.g. `/stock/{sku}`. The file is either one template per line (`#`
//! starts a comment; a leading method such as `GET` is allowed and ignored), or an OpenAPI
//! document in JSON, whose `paths` keys are the templates.
//!
//! As in OpenAPI, a path matches the template with the most literal segments among those of its
//! length (`/users/me` before `/users/{id}`); ties go to the earlier one in the file.

use std::path::Path;

use anyhow::{bail, Context};

#[derive(Clone, Debug, Default)]
pub struct Templates {
    /// By number of segments, best first within each.
    by_len: Vec<Vec<Template>>,
}

#[derive(Clone, Debug)]
struct Template {
    text: String,
    /// Each segment: Some(literal), or None for `{param}`.
    segments: Vec<Option<String>>,
}

/// Templates per file at most: matching costs one comparison per template of a path's length.
const MAX_TEMPLATES: usize = 10_000;

impl Templates {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read routes file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("routes file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let paths: Vec<String> = if text.trim_start().starts_with('{') {
            let doc: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
            let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) else {
                bail!("a JSON routes file is an OpenAPI document with a `paths` object");
            };
            paths.keys().cloned().collect()
        } else {
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(|l| {
                    l.rsplit(char::is_whitespace)
                        .next()
                        .unwrap_or(l)
                        .to_string()
                })
                .collect()
        };
        if paths.len() > MAX_TEMPLATES {
            bail!("{} templates; at most {MAX_TEMPLATES}", paths.len());
        }
        let mut templates = Templates::default();
        for (n, p) in paths.into_iter().enumerate() {
            if !p.starts_with('/') {
                bail!("template {} ({p:?}) does not start with /", n + 1);
            }
            let segments: Vec<Option<String>> = p
                .split('/')
                .skip(1)
                .map(|s| {
                    let param = s.len() >= 2 && s.starts_with('{') && s.ends_with('}');
                    (!param).then(|| s.to_string())
                })
                .collect();
            let len = segments.len();
            if templates.by_len.len() <= len {
                templates.by_len.resize(len + 1, Vec::new());
            }
            templates.by_len[len].push(Template { text: p, segments });
        }
        for group in &mut templates.by_len {
            // Stable: ties keep the file's order.
            group.sort_by_key(|t| std::cmp::Reverse(t.segments.iter().flatten().count()));
        }
        Ok(templates)
    }

    pub fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    /// The template `path` (no query) matches, if any.
    pub fn matching(&self, path: &str) -> Option<&str> {
        if self.by_len.is_empty() || !path.starts_with('/') {
            return None;
        }
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        self.by_len
            .get(segments.len())?
            .iter()
            .find(|t| {
                t.segments.iter().zip(&segments).all(|(t, s)| match t {
                    Some(literal) => literal == s,
                    None => !s.is_empty(),
                })
            })
            .map(|t| t.text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_openapi_give_the_same_templates() {
        let lines =
            Templates::parse("# shop\nGET /users/{id}\n/users/me\n/stock/{sku}/reserve\n").unwrap();
        let json = Templates::parse(
            r#"{"openapi":"3.0.0","paths":{"/users/{id}":{},"/users/me":{},"/stock/{sku}/reserve":{}}}"#,
        )
        .unwrap();
        for t in [lines, json] {
            assert_eq!(t.matching("/users/7"), Some("/users/{id}"));
            assert_eq!(t.matching("/users/me"), Some("/users/me"));
            assert_eq!(
                t.matching("/stock/a1/reserve"),
                Some("/stock/{sku}/reserve")
            );
            assert_eq!(t.matching("/stock//reserve"), None);
            assert_eq!(t.matching("/users/7/x"), None);
        }
    }

    #[test]
    fn bad_files_say_why() {
        assert!(Templates::parse("users/{id}").is_err());
        assert!(Templates::parse(r#"{"openapi":"3"}"#).is_err());
    }
}
