//! `aci-gateway`: parses the command line and runs it; everything else is in the library.

/// glibc's malloc spent about a fifth of the gateway's CPU under load (perf: `_int_malloc`,
/// `malloc_consolidate`, `unlink_chunk`, `cfree`); mimalloc serves the same allocations cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aci_gateway::cli::main()
}
