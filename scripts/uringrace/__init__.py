"""uringrace host pipeline: tree -> config -> build -> initramfs -> QEMU -> parse."""
