// The Gofer's death ends the sandbox (in a pod: the container it served):
// without its file server the application can only fail (every file call
// answers EIO from the moment the connection breaks), so the Sentry says
// why once and stops the application rather than leave it running blind.

import CMoat
import Glibc
import GoferProtocol

/// Starts a thread that waits for the Gofer's end of the connection to go
/// away, then reports it and kills the application (exit status 137).
func startGoferWatcher(_ k: Kernel, _ client: GoferClient) {
    watchGofer(client) {
        k.lock()
        let running = !k.finished && k.initTG.map { !$0.exiting } ?? false
        if running {
            let msg = "the file server (gofer) exited while the application was running; stopping the sandbox"
            Log.shared.info(msg)
            // A fatal error of the sandbox itself: the one line the user
            // must see, on the launcher's stderr.
            let line = "moat: " + msg + "\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            var info = SigInfo(signo: SIGKILL)
            info.fromHost = true
            k.initTG?.sendSignal(SIGKILL, info)
        }
        k.unlock()
    }
}

/// In a pod, a container's root Gofer: its death ends that container only
/// (SIGKILL to its init, said once in the container's log), the pod and its
/// other containers go on.
func startGoferWatcher(_ k: Kernel, _ client: GoferClient, container c: PodContainer) {
    watchGofer(client) { [weak c] in
        k.lock()
        if let c, !k.finished, c.state == .running, let tg = c.initTG, !tg.exiting, !tg.zombie {
            let msg = "the container's file server (gofer) exited; stopping container \(c.id)"
            Log.shared.info(msg)
            c.log?.append("stderr", Array(("moat: " + msg + "\n").utf8))
            var info = SigInfo(signo: SIGKILL)
            info.fromHost = true
            tg.sendSignal(SIGKILL, info)
        }
        k.unlock()
    }
}

/// Runs `gone` on a thread of its own once the Gofer's end closes.
private func watchGofer(_ client: GoferClient, _ gone: @escaping () -> Void) {
    final class Box { let c: GoferClient; let gone: () -> Void; init(_ c: GoferClient, _ g: @escaping () -> Void) { self.c = c; gone = g } }
    var th = pthread_t()
    let box = Unmanaged.passRetained(Box(client, gone)).toOpaque()
    let rc = pthread_create(&th, nil, { p in
        let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
        b.c.waitForDisconnect()
        b.gone()
        return nil
    }, box)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        Log.shared.info("cannot start the gofer watcher: \(rc)")
        return
    }
    pthread_detach(th)
}
