"""atp-lab: makes this machine a libvirt host with test VMs (see ``atp-lab --help``)."""
