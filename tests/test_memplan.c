/* test_memplan.c — the memory plan (model/memplan.h): its numbers against the
 * loaded model's own, the index cache of a V3.2 config, /proc/meminfo and
 * LEMMA_MEM_AVAILABLE parsing, and the refusal message. The 685B stand-in is
 * tests/sh/test_memplan.sh's. */
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "model/kvcache.h"
#include "model/memplan.h"
#include "model/model.h"
#include "test.h"

static const char *golden = "tests/golden/v3_f32";

TEST(plan_weights_match_the_loaded_model) {
    lm_error err;
    lm_memplan p;
    CHECKF(lm_memplan_read(golden, &p, &err) == 0, "%s", err.msg);
    lm_model *m = NULL;
    CHECKF(lm_model_load_flags(golden, LM_LOAD_ROWS, &m, &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(p.weight_bytes == (double)lm_st_total_bytes(m->tensors));
    CHECK(p.tensors == lm_st_count(m->tensors));
    CHECK(p.files == 1);
    CHECK(p.mtp_tensors == 0 && p.indexer_tensors == 0 && p.mismatched == 0);
    CHECK(p.params == lm_model_params(m).total);
    lm_memplan_size(&p, &(lm_memplan_req){.ctx = 1000, .seqs = 3, .rows = 64, .threads = 2, .attn = LM_ATTN_LATENT});
    double per_token = (double)lm_kv_floats_per_token(&m->cfg, LM_ATTN_LATENT) * m->cfg.num_hidden_layers * 4;
    CHECK(p.cache_tokens == 3000);
    CHECK(p.kv_bytes_per_token == per_token);
    CHECK(p.cache_bytes == 3000 * per_token);
    CHECK(p.index_bytes_per_token == 0);
    CHECK(p.total_bytes == p.weight_bytes + p.cache_bytes + p.buffer_bytes);
    /* the forward's buffers: the latent path keeps, per position of context, one
     * cache row (C + dr) and a score for each of 256 rows (forward.c
     * ATTN_ROWS); each piece is 64-byte aligned */
    double b1000 = p.buffer_bytes;
    lm_memplan_size(&p, &(lm_memplan_req){.ctx = 2000, .seqs = 3, .rows = 64, .threads = 2, .attn = LM_ATTN_LATENT});
    int64_t C = m->cfg.kv_lora_rank, dr = m->cfg.qk_rope_head_dim;
    double want = 1000.0 * (double)((C + dr) + 256) * 4;
    CHECKF(p.buffer_bytes - b1000 >= want - 3 * 64 && p.buffer_bytes - b1000 <= want + 3 * 64,
           "buffers grew by %.0f bytes for 1000 positions, expected %.0f", p.buffer_bytes - b1000, want);
    CHECK(p.buffer_bytes > 0);
    /* training: no cache or forward buffers, 16 bytes a parameter */
    lm_memplan_size(&p, &(lm_memplan_req){.training = 1});
    CHECK(p.train_bytes == 16.0 * (double)p.params);
    CHECK(p.total_bytes == p.weight_bytes + p.train_bytes);
    lm_model_free(m);
}

TEST(index_cache_from_a_v32_config) {
    lm_error err;
    lm_config cfg;
    CHECKF(lm_config_load(golden, &cfg, &err) == 0, "%s", err.msg);
    lm_tensor_set *set = NULL;
    CHECKF(lm_st_open_dir(golden, &set, &err) == 0, "%s", err.msg);
    const char v32[] = "{\"index_head_dim\": 128, \"index_n_heads\": 64, \"index_topk\": 2048}";
    lm_memplan p;
    CHECKF(lm_memplan_from(&cfg, v32, strlen(v32), set, &p, &err) == 0, "%s", err.msg);
    CHECK(p.index_head_dim == 128);
    lm_memplan_size(&p, &(lm_memplan_req){.ctx = 10, .seqs = 1, .rows = 1, .threads = 1, .attn = LM_ATTN_LATENT});
    /* 128 FP8 keys and one F32 scale per token and layer: the 132 bytes of the official code */
    CHECK(p.index_bytes_per_token == 132.0 * cfg.num_hidden_layers);
    CHECK(p.cache_bytes == 10 * (p.kv_bytes_per_token + p.index_bytes_per_token));
    const char bad[] = "{\"index_head_dim\": \"x\"}";
    CHECK(lm_memplan_from(&cfg, bad, strlen(bad), set, &p, &err) == -1);
    CHECKF(strstr(err.msg, "config.json: field 'index_head_dim' must be an integer") != NULL, "%s", err.msg);
    lm_st_close(set);
}

TEST(meminfo_and_byte_sizes) {
    lm_meminfo mi;
    lm_error err;
    const char text[] = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\nBuffers: 3 kB\n";
    CHECKF(lm_meminfo_parse(text, "/proc/meminfo", &mi, &err) == 0, "%s", err.msg);
    CHECK(mi.total == 24000000.0 * 1024 && mi.available == 12000000.0 * 1024);
    CHECK(!strcmp(mi.source, "MemAvailable"));
    CHECK(lm_meminfo_parse("MemTotal: 5 kB\n", "/proc/meminfo", &mi, &err) == -1);
    CHECKF(strstr(err.msg, "no 'MemAvailable: N kB' line") != NULL, "%s", err.msg);
    CHECK(lm_meminfo_parse("", "/proc/meminfo", &mi, &err) == -1);
    double b;
    CHECK(lm_parse_bytes("64G", &b) == 0 && b == 64.0 * 1073741824);
    CHECK(lm_parse_bytes("1.5T", &b) == 0 && b == 1.5 * 1099511627776.0);
    CHECK(lm_parse_bytes("512MiB", &b) == 0 && b == 512.0 * 1048576);
    CHECK(lm_parse_bytes("1000", &b) == 0 && b == 1000);
    CHECK(lm_parse_bytes("x", &b) == -1);
    CHECK(lm_parse_bytes("12Q", &b) == -1);
    CHECK(lm_parse_bytes("-1G", &b) == -1);
    CHECK(lm_parse_bytes("", &b) == -1);
    setenv("LEMMA_MEM_AVAILABLE", "2G", 1);
    CHECK(lm_meminfo_read(&mi, &err) == 0 && mi.available == 2.0 * 1073741824);
    CHECK(!strcmp(mi.source, "LEMMA_MEM_AVAILABLE"));
    setenv("LEMMA_MEM_AVAILABLE", "lots", 1);
    CHECK(lm_meminfo_read(&mi, &err) == -1);
    CHECKF(strstr(err.msg, "LEMMA_MEM_AVAILABLE is 'lots'") != NULL, "%s", err.msg);
    unsetenv("LEMMA_MEM_AVAILABLE");
    CHECKF(lm_meminfo_read(&mi, &err) == 0, "%s", err.msg); /* this machine's /proc/meminfo */
    CHECK(mi.available > 0 && mi.total >= mi.available);
}

TEST(check_refuses_with_the_numbers) {
    lm_error err;
    lm_memplan p;
    CHECKF(lm_memplan_read(golden, &p, &err) == 0, "%s", err.msg);
    lm_memplan_size(&p, &(lm_memplan_req){.ctx = 4096, .seqs = 1, .rows = 256, .threads = 1, .attn = LM_ATTN_LATENT});
    lm_meminfo mi = {p.total_bytes, p.total_bytes, "MemAvailable"};
    CHECK(lm_memplan_check(&p, golden, &mi, &err) == 0); /* exactly enough */
    mi.available = p.total_bytes - 1;
    CHECK(lm_memplan_check(&p, golden, &mi, &err) == -1);
    CHECKF(strstr(err.msg, "tests/golden/v3_f32 needs ") == err.msg, "%s", err.msg);
    CHECKF(strstr(err.msg, "(weights 701.38 KiB + cache 1.50 MiB for 4096 tokens + buffers ") != NULL, "%s", err.msg);
    CHECKF(strstr(err.msg, " is available (MemAvailable)") != NULL, "%s", err.msg);
    CHECK(strchr(err.msg, '\n') == NULL);
    char buf[32];
    CHECK(!strcmp(lm_human_bytes(1536, buf, sizeof buf), "1.50 KiB"));
    CHECK(!strcmp(lm_human_bytes(100, buf, sizeof buf), "100 B"));
}

TEST(mismatched_checkpoints_are_counted) {
    lm_error err;
    lm_memplan p;
    /* tests/bad's checkpoint whose config asks for 2^24 heads: the loader's shape error, not a plan, is wanted */
    CHECKF(lm_memplan_read("tests/bad/model_absurd_layers", &p, &err) == 0, "%s", err.msg);
    CHECK(p.mismatched > 0);
}

TEST(unreadable_checkpoints_are_errors) {
    lm_error err;
    lm_memplan p;
    CHECK(lm_memplan_read("tests/golden/no_such_model", &p, &err) == -1);
    CHECKF(strstr(err.msg, "tests/golden/no_such_model/config.json") != NULL, "%s", err.msg);
}

int main(void) {
    RUN(plan_weights_match_the_loaded_model);
    RUN(index_cache_from_a_v32_config);
    RUN(meminfo_and_byte_sizes);
    RUN(check_refuses_with_the_numbers);
    RUN(mismatched_checkpoints_are_counted);
    RUN(unreadable_checkpoints_are_errors);
    return test_report("test_memplan");
}
