//! The `corral` binary: a thin shell over the library, so that tests drive the
//! same code through `corral::cli` and `corral::http`.

/// mimalloc: the server allocates and frees many small buffers per request
/// on every worker thread, where glibc's allocator contends on its arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    corral::cli::main()
}
