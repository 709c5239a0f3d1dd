struct ProbeState {}
