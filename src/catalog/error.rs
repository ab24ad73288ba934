use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a catalog could not be loaded.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The files were read but describe no valid catalog. Every problem found
    /// is listed, ordered by file as given and then by position.
    #[error("{}", lines(.0))]
    Invalid(Vec<Problem>),
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl CatalogError {
    /// Every problem, an unreadable file as one without a line: what a reload
    /// reports.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            CatalogError::Invalid(problems) => problems.clone(),
            CatalogError::Io { path, source } => vec![Problem {
                file: path.clone(),
                line: None,
                column: None,
                message: format!("cannot read the file: {source}"),
            }],
        }
    }
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One thing wrong in one catalog file, shown as `file:line:column: message`
/// so editors and terminals can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Counted from 1.
    pub line: Option<usize>,
    /// Counted from 1.
    pub column: Option<usize>,
    pub message: String,
}

impl Problem {
    /// The problem as a warning: `file:line:column: warning: message`, the way
    /// compilers mark what is allowed but probably a mistake.
    pub fn as_warning(&self) -> impl fmt::Display + '_ {
        Warning(self)
    }

    fn place(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.place(f)?;
        write!(f, ": {}", self.message)
    }
}

struct Warning<'a>(&'a Problem);

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.place(f)?;
        write!(f, ": warning: {}", self.0.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: Option<usize>, column: Option<usize>) -> Problem {
        Problem {
            file: PathBuf::from("manifests/channels.yaml"),
            line,
            column,
            message: "unknown ladder `hd`".to_owned(),
        }
    }

    #[test]
    fn problem_omits_missing_parts_of_its_place() {
        assert_eq!(
            problem(Some(3), Some(12)).to_string(),
            "manifests/channels.yaml:3:12: unknown ladder `hd`"
        );
        assert_eq!(
            problem(Some(3), None).to_string(),
            "manifests/channels.yaml:3: unknown ladder `hd`"
        );
        assert_eq!(
            problem(None, None).to_string(),
            "manifests/channels.yaml: unknown ladder `hd`"
        );
    }

    #[test]
    fn warnings_say_so_after_the_place() {
        assert_eq!(
            problem(Some(3), Some(12)).as_warning().to_string(),
            "manifests/channels.yaml:3:12: warning: unknown ladder `hd`"
        );
        assert_eq!(
            problem(None, None).as_warning().to_string(),
            "manifests/channels.yaml: warning: unknown ladder `hd`"
        );
    }

    #[test]
    fn an_unreadable_file_is_one_problem_without_a_place() {
        let error = CatalogError::Io {
            path: PathBuf::from("manifests/gone.yaml"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let problems = error.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "manifests/gone.yaml: cannot read the file: entity not found"
        );
    }

    #[test]
    fn invalid_lists_one_problem_per_line() {
        let error = CatalogError::Invalid(vec![problem(Some(1), Some(2)), problem(None, None)]);
        assert_eq!(
            error.to_string(),
            "manifests/channels.yaml:1:2: unknown ladder `hd`\n\
             manifests/channels.yaml: unknown ladder `hd`"
        );
    }
}
