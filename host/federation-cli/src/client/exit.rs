//! Exit codes of the client subcommands, by gRPC code class (README: "Exit codes").

use tonic::Code;

pub const OK: i32 = 0;
/// Anything that is not a gRPC status: a file that cannot be read, a host that
/// answers nonsense, a background task that failed without a code.
pub const FAILURE: i32 = 1;
/// A command line clap or the client refused (bad flag, --input not JSON).
pub const USAGE: i32 = 2;
pub const INVALID: i32 = 3;
pub const NOT_FOUND: i32 = 4;
pub const CONFLICT: i32 = 5;
pub const RETRY_LATER: i32 = 6;
pub const DEADLINE: i32 = 7;
pub const CANCELLED: i32 = 8;
pub const DENIED: i32 = 9;
pub const SERVER_FAULT: i32 = 10;

/// The exit code of a call that ended with `code`.
pub fn of(code: Code) -> i32 {
    match code {
        Code::Ok => OK,
        Code::InvalidArgument | Code::OutOfRange => INVALID,
        Code::NotFound => NOT_FOUND,
        Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => CONFLICT,
        Code::Unavailable | Code::ResourceExhausted => RETRY_LATER,
        Code::DeadlineExceeded => DEADLINE,
        Code::Cancelled => CANCELLED,
        Code::Unauthenticated | Code::PermissionDenied => DENIED,
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => SERVER_FAULT,
    }
}
