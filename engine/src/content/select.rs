//! Choosing some files of a root: glob patterns over its manifest's paths.
//!
//! A pattern selects a file when it matches the file's path, or the path of
//! a directory the file is in: `site/img` selects everything under
//! `site/img/`. `*` and `?` stay within one path component, `**` spans any
//! number of them, and `[abc]` is a class, as in a shell.
//!
//! ```
//! use swarm_engine::content::Selection;
//!
//! let s = Selection::new(&["site/img".into(), "*.txt".into()])?;
//! assert!(s.matches("site/img/logo.png"));
//! assert!(s.matches("notes.txt"));
//! assert!(!s.matches("site/index.html"));
//! assert!(!s.matches("docs/notes.txt"), "* does not cross a /");
//! assert!(Selection::new(&["**/*.txt".into()])?.matches("docs/notes.txt"));
//! assert!(Selection::all().matches("anything"));
//! # Ok::<(), swarm_engine::content::SelectError>(())
//! ```

use super::manifest::{Entry, Manifest};

/// Which files of a root to take; empty means all of them.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    patterns: Vec<(String, glob::Pattern)>,
}

/// A selection that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// A pattern that is not a glob.
    #[error("{pattern:?} is not a path pattern: {why}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// No file of the root matches.
    #[error(
        "no file of the root matches {patterns} (it has {files} file{s}); `swarm ls ROOT` lists \
         them",
        s = if *files == 1 { "" } else { "s" }
    )]
    NoMatch {
        /// The patterns, quoted and joined.
        patterns: String,
        /// How many files the root has.
        files: usize,
    },
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// The files that match any of `patterns` (none given: all files). A
    /// leading `./` or `/` and a trailing `/` are ignored.
    pub fn new(patterns: &[String]) -> Result<Self, SelectError> {
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let t = p.trim();
            let t = t.strip_prefix("./").unwrap_or(t);
            let t = t.trim_start_matches('/').trim_end_matches('/');
            if t.is_empty() {
                return Err(SelectError::BadPattern {
                    pattern: p.clone(),
                    why: "it is empty; give a file or directory of the root".into(),
                });
            }
            let g = glob::Pattern::new(t).map_err(|e| SelectError::BadPattern {
                pattern: p.clone(),
                why: e.msg.to_owned(),
            })?;
            out.push((p.clone(), g));
        }
        Ok(Self { patterns: out })
    }

    /// Exactly the file at `path` (no character in it is a pattern).
    pub fn exact(path: &str) -> Self {
        let p = path.trim_matches('/');
        let g = glob::Pattern::new(&glob::Pattern::escape(p))
            .unwrap_or_else(|_| glob::Pattern::default());
        Self {
            patterns: vec![(p.to_owned(), g)],
        }
    }

    /// Whether it takes every file.
    pub fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the file at `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        if self.is_all() {
            return true;
        }
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        // The path itself, then each directory it is in.
        let mut prefixes = std::iter::once(path).chain(
            path.char_indices()
                .filter(|&(_, c)| c == '/')
                .map(|(i, _)| &path[..i]),
        );
        prefixes.any(|p| self.patterns.iter().any(|(_, g)| g.matches_with(p, opts)))
    }

    /// The entries of `manifest` it selects; refused when patterns were
    /// given and none matches.
    pub fn entries<'m>(&self, manifest: &'m Manifest) -> Result<Vec<&'m Entry>, SelectError> {
        let chosen: Vec<&Entry> = manifest
            .entries()
            .iter()
            .filter(|e| self.matches(&e.path))
            .collect();
        if chosen.is_empty() && !self.is_all() && !manifest.entries().is_empty() {
            return Err(SelectError::NoMatch {
                patterns: self
                    .patterns
                    .iter()
                    .map(|(p, _)| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                files: manifest.entries().len(),
            });
        }
        Ok(chosen)
    }
}
