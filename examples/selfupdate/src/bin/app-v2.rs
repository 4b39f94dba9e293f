//! Version 2.0.0 of the example application.
fn main() -> std::process::ExitCode {
    swarm_selfupdate_example::main("2.0.0", swarm_selfupdate_example::Build::Healthy)
}
