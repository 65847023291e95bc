"""The locker's domain: orders, compartments, doors, codes, the cold chain, central's side
and the daemon that runs them. It imports no hardware, no HTTP and no simulator (a test reads
every import): those plug in through locker.domain.ports, wired by the composition root
(locker.cli, locker.doctor, locker.demo, hardware.factory)."""
