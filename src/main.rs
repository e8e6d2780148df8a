//! `aci-gateway`: parses the command line and runs it; everything else is in the library.

/// glibc's malloc spent about a fifth of the gateway's CPU under load (perf: `_int_malloc`,
/// `malloc_consolidate`, `unlink_chunk`, `cfree`); mimalloc serves the same allocations cheaper.
///
/// Built with `no_thp` (Cargo.toml), which turns transparent huge pages off for the process:
/// mimalloc otherwise asks for them on its arenas, and its purges and refaults then zeroed
/// (and compacted) 2 MiB at a time on the writer's path. Side by side at 64 in flight, gateway on
/// one core: 10 100–11 300 → 13 900–14 200 filings/s, p99 42–49 → 7–8 ms; echo unchanged; RSS
/// of an echo server 68 → 23 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aci_gateway::cli::main()
}
