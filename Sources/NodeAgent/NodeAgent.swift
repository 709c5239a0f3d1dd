// NodeAgent: `moat node`, the kubelet-like agent that watches the pods the
// scheduler bound to its Node and drives them to their spec over CRI (`moat
// cri`, or any CRI runtime such as containerd's).
