//! The `corral` binary: a thin shell over the library, so that tests drive the
//! same code through `corral::cli` and `corral::http`.

fn main() -> std::process::ExitCode {
    corral::cli::main()
}
