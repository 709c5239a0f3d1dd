// CRI: `moat cri`, the Kubernetes Container Runtime Interface (runtime.v1)
// over gRPC on a Unix socket. A pod is one sandbox (one Sentry); its
// containers run inside that Sentry, each with its own root file system
// from the image store (Images). See README.md "CRI".
