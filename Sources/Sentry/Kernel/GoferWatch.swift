// The Gofer's death ends the sandbox: without its file server the
// application can only fail (every file call answers EIO from the moment
// the connection breaks), so the Sentry says why once and stops the
// application rather than leave it running blind.

import CMoat
import Glibc
import GoferProtocol

/// Starts a thread that waits for the Gofer's end of the connection to go
/// away, then reports it and kills the application (exit status 137).
func startGoferWatcher(_ k: Kernel, _ client: GoferClient) {
    final class Box { let k: Kernel; let c: GoferClient; init(_ k: Kernel, _ c: GoferClient) { self.k = k; self.c = c } }
    var th = pthread_t()
    let box = Unmanaged.passRetained(Box(k, client)).toOpaque()
    pthread_create(&th, nil, { p in
        let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
        b.c.waitForDisconnect()
        b.k.lock()
        let running = !b.k.finished && b.k.initTG.map { !$0.exiting } ?? false
        if running {
            let msg = "the file server (gofer) exited while the application was running; stopping the sandbox"
            Log.shared.info(msg)
            // A fatal error of the sandbox itself: the one line the user
            // must see, on the launcher's stderr.
            let line = "moat: " + msg + "\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            var info = SigInfo(signo: SIGKILL)
            info.fromHost = true
            b.k.initTG?.sendSignal(SIGKILL, info)
        }
        b.k.unlock()
        return nil
    }, box)
    pthread_detach(th)
}
