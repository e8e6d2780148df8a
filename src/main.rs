//! `aci-gateway`: parses the command line and runs it; everything else is in the library.

fn main() -> std::process::ExitCode {
    aci_gateway::cli::main()
}
