{
  "targets": [
    {
      "target_name": "meshward_native",
      "sources": ["src/addon.c", "src/tun.c", "src/offload.c", "src/netlink.c", "src/udp.c", "src/aead.c", "src/poller.c", "src/sockopt.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
