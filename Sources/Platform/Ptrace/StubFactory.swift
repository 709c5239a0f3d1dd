import CMoat
import Glibc

/// Creates fresh address spaces: a host process holding only the stub page.
///
/// The master stub is started once, before the Sentry confines itself, and
/// is driven by the factory's own pthread (its tracer). A new address space is
/// a clone of the master (CLONE_PARENT, so every stub is the Sentry's child
/// and reaped by its tracer) waiting in pause() for its driver to seize it.
public final class StubFactory: @unchecked Sendable {
    private var mu = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var requests = 0
    /// Address spaces asked for by `begin(prefetch:)` and not yet taken.
    private var prefetched = 0
    private var results: [Int] = []
    private var thread = pthread_t()
    private var startError: Int32 = 0
    private var started = false
    /// A call `onFactoryThread` runs on the factory's thread, and its result.
    private var job: (() -> Int32)?
    private var jobResult: Int32?
    private var exited = false

    public static let shared = StubFactory()

    /// Called (on the factory's thread) when the master stub turns out to be
    /// gone; the Sentry ends the sandbox. Set before `start`.
    public nonisolated(unsafe) var onMasterLost: (() -> Void)?

    private init() {
        pthread_mutex_init(&mu, nil)
        pthread_cond_init(&cond, nil)
    }

    /// Starts the master stub and its driver thread. Call before the Sentry
    /// installs its own seccomp filter.
    public func start() throws {
        try begin()
        try awaitStarted()
    }

    /// Starts the master stub and its driver thread without waiting for
    /// them, so that the Sentry's other start-up work runs meanwhile; call
    /// `awaitStarted` before the first `newAddressSpace`. With `prefetch`,
    /// the factory clones the first address space as soon as the master is
    /// up, ready for the init process.
    public func begin(prefetch: Bool = false) throws {
        if prefetch {
            pthread_mutex_lock(&mu)
            requests += 1
            prefetched += 1
            pthread_mutex_unlock(&mu)
        }
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { p in
            let f = Unmanaged<StubFactory>.fromOpaque(p!).takeRetainedValue()
            f.loop()
            return nil
        }, box.toOpaque())
        if rc != 0 { throw HostErrno(rc) }
    }

    /// Waits until the master stub runs (see `begin`).
    public func awaitStarted() throws {
        pthread_mutex_lock(&mu)
        while !started { pthread_cond_wait(&cond, &mu) }
        let e = startError
        pthread_mutex_unlock(&mu)
        if e != 0 { throw HostErrno(e) }
    }

    /// Runs `body` on the factory's own thread and returns its result, or
    /// -ESRCH when that thread has ended. Credentials and capabilities are
    /// per thread on Linux: the Sentry's confinement drops them on this
    /// thread too (Sentry/Confinement.swift), or it would keep host root.
    public func onFactoryThread(_ body: @escaping () -> Int32) -> Int32 {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        if exited || !started { return exited ? -ESRCH : -EAGAIN }
        job = body
        jobResult = nil
        pthread_cond_broadcast(&cond)
        while jobResult == nil && !exited { pthread_cond_wait(&cond, &mu) }
        return jobResult ?? -ESRCH
    }

    /// Returns the host pid of a new, untraced stub process. With
    /// `keepSpare` (execve), the factory then clones the next one at once,
    /// while the caller loads its program, so that the next exec finds its
    /// address space made instead of waiting for this thread to inject a
    /// clone into the master (two thread handoffs and the host clone on
    /// the exec's path). At most one spare waits, in pause() like any new
    /// stub, untraced: the sandbox's pid namespace ends it with the Sentry.
    /// Spawning the init process asks for none, so a sandbox that never
    /// execs (and its start-up) pays nothing.
    public func newAddressSpace(keepSpare: Bool = false) -> Result<pid_t, HostErrno> {
        pthread_mutex_lock(&mu)
        if prefetched > 0 {
            prefetched -= 1   // made (or being made) already
        } else {
            requests += 1
            pthread_cond_broadcast(&cond)
        }
        while results.isEmpty { pthread_cond_wait(&cond, &mu) }
        let r = results.removeFirst()
        if keepSpare && r >= 0 && prefetched == 0 {
            requests += 1
            prefetched += 1
            pthread_cond_broadcast(&cond)
        }
        pthread_mutex_unlock(&mu)
        return r < 0 ? .failure(HostErrno(Int32(-r))) : .success(pid_t(r))
    }

    private func loop() {
        let pid = moat_start_master_stub()
        var master: PtraceThread? = nil
        if pid > 0 { master = try? PtraceThread(seize: pid) }
        pthread_mutex_lock(&mu)
        started = true
        if master == nil { startError = pid < 0 ? -pid : ESRCH }
        pthread_cond_broadcast(&cond)
        guard let master else { exited = true; pthread_mutex_unlock(&mu); return }
        while true {
            while requests == 0 && job == nil { pthread_cond_wait(&cond, &mu) }
            if let j = job {
                job = nil
                pthread_mutex_unlock(&mu)
                let r = j()
                pthread_mutex_lock(&mu)
                jobResult = r
                pthread_cond_broadcast(&cond)
                continue
            }
            requests -= 1
            pthread_mutex_unlock(&mu)
            let child = master.cloneStub(flags: 0x8000 /* CLONE_PARENT */)
            if child == -Int(ESRCH), let lost = onMasterLost {
                // The master stub is gone (killed from the host). Every new
                // address space is its clone, and a confined Sentry cannot
                // start another: no process could exec again, each attempt
                // failing with a bare ENOMEM while the sandbox looks healthy.
                lost()
            }
            pthread_mutex_lock(&mu)
            results.append(child)
            pthread_cond_broadcast(&cond)
        }
    }
}
