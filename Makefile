# lemma — build, test, sanitize, bench, fuzz.
#
#   make            build ./lemma (release, -O2, SIMD variants chosen at run time)
#   make test       build and run the whole test suite (tests/run.sh)
#   make sanitize   the same suite built with ASan + UBSan
#   make bench      benchmarks (bench/run.sh), printed as a table
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each
#
# Every src/**/*.c except src/cli/ goes into build/<variant>/liblemma.a. Files
# named *_avx2.c / *_avx512.c / *_fma.c are compiled with those ISA flags; the code that
# calls them checks the CPU at run time, so the binary runs anywhere x86-64.
#
# The folders of src/ are layers; each includes only its own headers and
# those of the folders before it (no include cycles; tests/sh/test_layers.sh
# checks it and says what each folder holds):
#   core < formats < tokenizer < tasks < model < data < infer < train < prove < serve < recipe < cli

CC       ?= cc
VARIANT  ?= release
BUILD    := build/$(VARIANT)
CSTD     := -std=gnu11
WARN     := -Wall -Wextra -Wno-unused-parameter
BASEARCH := -march=x86-64-v2 -mtune=generic
CPPFLAGS := -Isrc -D_GNU_SOURCE
LDLIBS   := -lm -lpthread -lpcre2-8 -lcurl -lmicrohttpd

# OpenMPI (Debian's libopenmpi-dev): `mpirun -np K lemma train` trains data-
# parallel (src/train/dp.h). Found through mpicc; MPI=0 builds without it
# (then a lemma started by mpirun with several ranks refuses to train).
MPI      ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
  MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
  LDLIBS     += $(shell mpicc --showme:link 2>/dev/null)
endif

ifeq ($(VARIANT),release)
  OPT := -O2 -g
else ifeq ($(VARIANT),sanitize)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(VARIANT),debug)
  OPT := -O0 -g
endif

# -ffp-contract=off: no file fuses a*b+c on its own (the FMA-compiled SIMD files
# would otherwise differ from the baseline ones); fused ops are explicit
# (fmaf, _mm*_fmadd_ps). See docs/arithmetic.md.
CFLAGS   := $(CSTD) $(WARN) $(OPT) $(BASEARCH) -ffp-contract=off
AVX2FL   := -mavx2 -mfma -mf16c
AVX512FL := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c

LIB_SRC  := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
CLI_SRC  := $(shell find src/cli -name '*.c' | sort)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/bench_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB      := $(BUILD)/liblemma.a

.PHONY: all test sanitize bench fuzz clean tests-bin
all: lemma

lemma: $(BUILD)/lemma
	ln -sf $(BUILD)/lemma lemma

$(BUILD)/lemma: $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(AVX512FL) -MMD -MP -c $< -o $@

$(BUILD)/%_fma.o: %_fma.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -mfma -MMD -MP -c $< -o $@

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(AVX2FL) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The option tables' test links the commands themselves (all CLI objects but main.o).
CLI_TEST_OBJ := $(filter-out $(BUILD)/src/cli/main.o,$(CLI_OBJ))
$(BUILD)/tests/test_cli_options: tests/test_cli_options.c $(wildcard tests/*.h) $(CLI_TEST_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(CLI_TEST_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/src/train/dp.o: CPPFLAGS += $(if $(filter 1,$(MPI)),-DLEMMA_MPI $(MPI_CFLAGS))
# dp.o (and so everything linked) is rebuilt when MPI changes: the file holds the setting.
$(BUILD)/src/train/dp.o: $(BUILD)/mpi-setting
$(BUILD)/mpi-setting: FORCE
	@mkdir -p $(BUILD); echo '$(MPI)' | cmp -s - $@ || echo '$(MPI)' > $@
.PHONY: FORCE

# templates/lemma.json is compiled into the binary (.incbin in templates.c).
$(BUILD)/src/prove/templates.o: templates/lemma.json

tests-bin: $(BUILD)/lemma $(TEST_BIN)

test: lemma tests-bin $(BENCH_BIN)   # the benchmarks are built too, so a change that breaks them fails here
	@LEMMA_BUILD=$(BUILD) bash tests/run.sh

sanitize:
	@$(MAKE) --no-print-directory VARIANT=sanitize tests-bin
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LEMMA_BUILD=build/sanitize LEMMA_SANITIZE=1 bash tests/run.sh

bench: lemma $(BENCH_BIN)
	@LEMMA_BUILD=$(BUILD) bash bench/run.sh

FUZZ_SECONDS ?= 30
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_SRC)

clean:
	rm -rf build lemma

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

# The README's main job: build the default recipe (a small self-verifying
# prover for the synthetic theorem domains: problem sets, tokenizer,
# pretraining, SFT) or reuse it when it is built, then run the proof pipeline
# (generate -> verify -> refine) on the held-out problems and print the table.
# A rerun reuses the build and the pipeline's pool (nothing is asked twice).
# The pool is the model's answers, so each model gets its own folder,
# prove-heldout-<first 12 hex digits of the weights' sha256>: after a rebuild
# with other weights the run starts afresh beside the old one (lemma prove
# would refuse to continue the old folder with another model).
# RUN_MODEL is the stage whose model proves: the SFT prover, because the
# post-training stages built after it do not yet prove better (README
# "Status", docs/results.md); RUN_MODEL=grpo proves with the last of them.
RECIPE ?= recipes/default.json
RUN_OUT ?= build/default
RUN_MODEL ?= prover
PROVE_ARGS ?= --samples 8 --verifications 4 --rounds 4 --max-tokens 512 --seed 1
run: lemma
	./lemma build $(RECIPE) --out $(RUN_OUT)
	h=$$(sha256sum $(RUN_OUT)/$(RUN_MODEL)/model.safetensors | cut -c1-12) && [ -n "$$h" ] && \
	./lemma prove $(RUN_OUT)/inputs/heldout.jsonl --model $(RUN_OUT)/$(RUN_MODEL) --out $(RUN_OUT)/prove-heldout-$$h $(PROVE_ARGS) && \
	echo "make run: the report is $(RUN_OUT)/prove-heldout-$$h/report.md (report.json and the pool beside it)"

# A quick look at the inference engine on a tiny checkpoint kept in tests/.
DEMO_MODEL ?= tests/golden/v3_f32
demo: lemma
	./lemma info $(DEMO_MODEL)
	./lemma generate $(DEMO_MODEL) --ids 145,164,42,193 -n 24 --temperature 0.8 --top-p 0.95 --seed 1
	./lemma logits $(DEMO_MODEL) --ids 145,164,42
.PHONY: demo run
