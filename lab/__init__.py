"""The edgeaudit development lab: the network-namespace lab, device emulators (lab.emulator), benchmarks."""
