# bench/torch_env.sh — sourced by the benchmarks that run PyTorch as their
# anchor: PyTorch gets OpenBLAS when it is installed (libopenblas0-openmp),
# through LD_LIBRARY_PATH for its own processes only, so the system's
# libblas.so.3 may stay the reference BLAS that tests/ref's golden checks
# were made with. Sets OPENBLAS_DIR and the array torch_env (empty without
# OpenBLAS); run PyTorch as `env "${torch_env[@]}" python3 ...`.
OPENBLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
torch_env=(); [ -f "$OPENBLAS_DIR/libblas.so.3" ] && torch_env=(LD_LIBRARY_PATH="$OPENBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
