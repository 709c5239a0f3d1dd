// `moat kvm-bench [N]` (hidden): the KVM platform's syscall round trip, for
// bench/kvm.sh. Prints ns_per_call=<float> like bench/programs/getppid.c,
// and cpu_ns_per_call=<float>, the driver thread's CPU time.
import ArgumentParser
import Platform

struct KVMBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvm-bench", abstract: "Measure one syscall round trip on the KVM platform.",
        shouldDisplay: false)
    @Argument(help: "Round trips to time.") var iterations: Int = 200_000

    func run() throws {
        guard iterations > 0 else { throw ValidationError("N must be positive") }
        let r = try KVMBench.syscallRoundTrip(iterations: iterations)
        print("ns_per_call=\(r.wall) cpu_ns_per_call=\(r.cpu)")
    }
}
