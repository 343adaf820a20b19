//! Why FHIRPath fails: an expression that does not parse, an evaluation the
//! specification calls an error, and either of them for callers that parse
//! and evaluate in one go.

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not FHIRPath syntax.
    #[error("FHIRPath syntax error at offset {position}: {message}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// Byte offset in the expression.
        position: usize,
    },
    /// A function this engine does not know.
    #[error("unknown FHIRPath function {name}() at offset {position}")]
    UnknownFunction {
        /// Its name.
        name: String,
        /// Byte offset in the expression.
        position: usize,
    },
    /// A known function called with the wrong number of arguments.
    #[error("{name}() does not take {count} argument(s)")]
    Arity {
        /// The function.
        name: String,
        /// How many were given.
        count: usize,
    },
}

/// Why an evaluation failed (FHIRPath: an error, not an empty result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A function or operator that needs at most one item got several.
    #[error("{0}: expected a single item, got a collection of several")]
    NotSingleton(&'static str),
    /// An operand of the wrong type.
    #[error("{0}")]
    Type(String),
    /// `%name` that is not defined.
    #[error("undefined variable %{0}")]
    UndefinedVariable(String),
    /// A hook could not answer (e.g. `conformsTo` of an unknown profile).
    #[error("{0}")]
    Hook(String),
    /// Any other failure the specification calls an error.
    #[error("{0}")]
    Invalid(String),
}

/// Either failure, for callers that parse and evaluate in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirPathError {
    /// The expression does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The evaluation failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
}
