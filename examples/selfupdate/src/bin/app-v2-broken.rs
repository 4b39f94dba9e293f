//! A version 2.0.0 with a fault: it exits non-zero at every start, before
//! it could call `mark_healthy`.
fn main() -> std::process::ExitCode {
    swarm_selfupdate_example::main("2.0.0", swarm_selfupdate_example::Build::FailsAtStart)
}
