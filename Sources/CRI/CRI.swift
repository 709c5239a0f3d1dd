// CRI: `moat cri`, the Kubernetes Container Runtime Interface (runtime.v1)
// over gRPC on a Unix socket. A pod is one sandbox (one Sentry, reached only
// through `PodSandbox` in Sources/Sandbox/Pod.swift); its containers run
// inside that Sentry, each with its own root file system from the image
// store (Images). This module owns the host side: the gRPC server, the
// pods' and containers' records under --root (they outlive `moat cri`), the
// CRI log files' places, and recovery after a restart. See README.md "CRI".
//
// Files: Server.swift (socket, serving, shutdown), Runtime.swift (the state
// machine: pods and containers), Containers.swift (CreateContainer's spec:
// command, env, user, mounts), Records.swift (persisted state), Errors.swift
// (gRPC status mapping and request validation), RuntimeService.swift (the
// thin gRPC adapter), ExecSync.swift, Streaming.swift (Exec's WebSocket
// server), CNI.swift (pod networks), DirectoryImages.swift.
