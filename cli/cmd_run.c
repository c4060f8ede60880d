/*
 * cmd_run.c - `ssfteval run`: evaluate tasks with a backend, grading and
 * storing every sample as it arrives; re-running the same command resumes.
 */
#include "cli.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backend.h"
#include "device.h"
#include "engine.h"
#include "run.h"
#include "ssfteval/hub.h"
#include "ssfteval/model.h"
#include "ssfteval/prompt.h"
#include "ssfteval/records.h"
#include "ssfteval/tokenizer.h"
#include "store.h"

/* Two strings: C11 promises string literals of 4095 bytes, no more. */
static const char help_head[] =
    "usage: ssfteval run TASK[,TASK...] [--metric M[,M...]] (--model DIR | --endpoint URL |\n"
    "                    --generations FILE) [--db FILE] [--protocol ssft] [OPTIONS]\n"
    "\n"
    "Plan the samples the metrics need, generate the missing ones, grade and store each one as\n"
    "it arrives, then compute the metrics with standard errors and bootstrap 95% intervals.\n"
    "Running the same command again resumes the run and generates only what is missing.\n"
    "\n"
    "  --metric M,...        pass@K, avg@N, cons@K (= maj@K), cons@6:native, pass@1:tagK\n"
    "                        (default: each task's metrics)\n"
    "  --protocol ssft|none  SSFT layout: pass@1 = 32 <think1> samples; cons@6:native = S groups\n"
    "                        of one sample per tag; cons@K = K samples, tags round-robin\n"
    "                        (none, the default: untagged samples)\n"
    "  --groups S            S, the groups of cons@6:native and the samples of pass@1:tagK\n"
    "                        (default: the task's, 11 AIME, 6 others)\n"
    "  --samples N           n, the samples per question pass@K draws without --protocol\n"
    "                        (default: the most any metric draws, so pass@1 beside cons@32\n"
    "                        averages 32; avg@N and cons@K draw N and K)\n"
    "  --compat ssft-lighteval|none  reproduce the reference implementation's metrics,\n"
    "                        quirks included (block-order maj@32, votes on extracted text)\n"
    "  --profile NAME        grading profile: default, lighteval or ssft-lighteval (the\n"
    "                        default with --compat ssft-lighteval)\n"
    "  --backend NAME        engine (in process: --model DIR), openai (a server: vLLM, SGLang,\n"
    "                        llama.cpp, OpenAI) or replay (a JSONL file of generations)\n"
    "  --generations FILE    replay: JSONL lines {task, doc, tag, sample, text, finish_reason}\n"
    "  --endpoint URL        openai: the server's base URL up to /v1 (also SSFTEVAL_ENDPOINT)\n"
    "  --api-key-env NAME    openai: the variable holding the API key (default OPENAI_API_KEY)\n"
    "  --api completions|chat  openai: the raw prompt (default) or chat messages\n"
    "  --concurrency N       openai: requests in flight (default 64)\n"
    "  --request-n auto|K    openai: samples per request (auto probes whether n is honoured)\n"
    "  --stream auto|on|off  openai: SSE streaming (default on)\n"
    "  --timeout S           openai: idle seconds (streaming) or seconds per attempt\n"
    "  --max-attempts N      openai: attempts per sample (default 8)\n"
    "  --outage-wait S       openai: seconds to wait for a server that stopped answering\n"
    "                        before its samples fail (default 900)\n"
    "";

static const char help_engine[] =
    "  --model NAME          the model's name in reports (openai: the request's; default the\n"
    "                        first the server lists); with the engine, its directory or\n"
    "                        hf:ORG/NAME[@REV] (selects the engine when no endpoint is given)\n"
    "  --device auto|cpu|cuda  engine: where to run (auto: the GPU when there is one)\n"
    "  --slots N             engine: sequences a step (CPU default 8; CUDA: as many as fit)\n"
    "  --max-context N       engine: prompt + output tokens per sequence (default: the model's,\n"
    "                        4096 on the CPU)\n"
    "  --threads N           engine: CPU threads (default: the CPUs this process may use)\n"
    "  --gpu-memory-utilization F  engine: share of GPU memory to use (default 0.9)\n"
    "  --stop STR            a stop string (repeatable; the text ends before it): engine, openai\n"
    "  --block-size N        engine: positions per KV block (default 16)\n"
    "  --kv-blocks N         engine: KV blocks in the pool (default: CPU slots x context; CUDA:\n"
    "                        what free memory holds)\n"
    "  --no-cuda-graphs      engine: launch CUDA decode steps kernel by kernel\n"
    "  --no-flash-prefill    engine: CUDA prompts through the decode attention kernel, not the\n"
    "                        flash prefill kernel\n"
    "  --no-pdl              engine: launch each CUDA kernel once the one before has completed\n"
    "                        (by default they overlap its tail: programmatic dependent launch)\n"
    "  --rope-in-attention   engine (CUDA; slower when timed): decode steps' bias, RoPE and\n"
    "                        KV store done by the attention kernel, one launch a layer fewer\n"
    "  --own-small-gemms tuned|always|never  engine (CUDA; slower when timed): which GEMMs\n"
    "                        of up to 64 rows (q|k|v, o, gate|up with the SiLU, down) take the\n"
    "                        engine's own GEMM, not cuBLAS: those where it agreed with cuBLAS\n"
    "                        and was faster when timed on this GPU, all, or none (the default)\n"
    "  --overlap-steps       engine (CUDA; slower when timed): build and stage each decode\n"
    "                        step while the GPU runs the one before, its tokens fed on the GPU\n"
    "  --fuse-norms          engine (CUDA; slower when timed): with --own-small-gemms, the\n"
    "                        RMSNorms between the engine's GEMMs fused into them (two launches\n"
    "                        a layer fewer where both GEMMs of a norm take the own one)\n"
    "  --fold-norms          engine (CUDA; the default): the RMSNorms before q|k|v and\n"
    "                        gate|up folded into their weights, cuBLAS's GEMMs kept (two\n"
    "                        launches a layer fewer)\n"
    "  --no-fold-norms       engine: CUDA RMSNorms as kernels of their own\n"
    "  --gemm-split-search   engine (CUDA; slower when timed): the GEMM tuner also times\n"
    "                        cublasLt's algorithms at 2-16 splits of K, for skinny decode GEMMs\n"
    "  --no-gemm-split-search  engine: CUDA GEMMs tuned without the split search (the default)\n"
    "  --kv-cache-dtype bf16|fp8  engine (CUDA): KV cache precision (default bf16; fp8 is e4m3\n"
    "                        with a scale per position and KV head: half the memory)\n"
    "  --db FILE             the results store (default ssfteval.sqlite; also SSFTEVAL_DB)\n"
    "  --limit N             the first N documents of each task\n"
    "  --seed S              run seed (default 1234): every sample's seed derives from it\n"
    "  --temperature T --top-p P --top-k K --min-p P --max-new-tokens N\n"
    "                        sampling (default: the task's, T 0.7, top-p 0.95, 32768 tokens)\n"
    "  --chat-template NAME  qwen2.5 (default), chatml, none\n"
    "  --quiet               no progress output\n" CLI_TASK_HELP;

enum {
    OPT_METRIC = OPT_COMMAND_BASE,
    OPT_PROTOCOL,
    OPT_GROUPS,
    OPT_SAMPLES,
    OPT_COMPAT,
    OPT_PROFILE,
    OPT_BACKEND,
    OPT_GENERATIONS,
    OPT_MODEL,
    OPT_DB,
    OPT_LIMIT,
    OPT_SEED,
    OPT_TEMPERATURE,
    OPT_TOP_P,
    OPT_TOP_K,
    OPT_MIN_P,
    OPT_MAX_NEW_TOKENS,
    OPT_CHAT_TEMPLATE,
    OPT_QUIET,
    /* From here on the openai backend's options, then from OPT_DEVICE on the
     * engine's: option_backends tells them apart by this order. */
    OPT_ENDPOINT,
    OPT_API_KEY_ENV,
    OPT_API,
    OPT_CONCURRENCY,
    OPT_REQUEST_N,
    OPT_STREAM,
    OPT_TIMEOUT,
    OPT_MAX_ATTEMPTS,
    OPT_OUTAGE_WAIT,
    OPT_DEVICE,
    OPT_SLOTS,
    OPT_MAX_CONTEXT,
    OPT_THREADS,
    OPT_GPU_MEMORY,
    OPT_STOP,
    OPT_BLOCK_SIZE,
    OPT_KV_BLOCKS,
    /* OPT_NO_CUDA_GRAPHS .. OPT_NO_GEMM_SPLIT_SEARCH tune the CUDA device
     * alone (cuda_speed_option) */
    OPT_NO_CUDA_GRAPHS,
    OPT_NO_FLASH_PREFILL,
    OPT_NO_PDL,
    OPT_ROPE_IN_ATTENTION,
    OPT_OWN_SMALL_GEMMS,
    OPT_OVERLAP_STEPS,
    OPT_FUSE_NORMS,
    OPT_FOLD_NORMS,
    OPT_NO_FOLD_NORMS,
    OPT_GEMM_SPLIT_SEARCH,
    OPT_NO_GEMM_SPLIT_SEARCH,
    OPT_KV_DTYPE,
    OPT_END,
};

/* The command's options; open_backend names an option by this table. */
static const struct option run_options[] = {
    CLI_TASK_OPTIONS,
    {"metric", required_argument, NULL, OPT_METRIC},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"groups", required_argument, NULL, OPT_GROUPS},
    {"samples", required_argument, NULL, OPT_SAMPLES},
    {"compat", required_argument, NULL, OPT_COMPAT},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"generations", required_argument, NULL, OPT_GENERATIONS},
    {"model", required_argument, NULL, OPT_MODEL},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"slots", required_argument, NULL, OPT_SLOTS},
    {"max-context", required_argument, NULL, OPT_MAX_CONTEXT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"gpu-memory-utilization", required_argument, NULL, OPT_GPU_MEMORY},
    {"stop", required_argument, NULL, OPT_STOP},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    {"kv-blocks", required_argument, NULL, OPT_KV_BLOCKS},
    {"no-cuda-graphs", no_argument, NULL, OPT_NO_CUDA_GRAPHS},
    {"no-flash-prefill", no_argument, NULL, OPT_NO_FLASH_PREFILL},
    {"no-pdl", no_argument, NULL, OPT_NO_PDL},
    {"rope-in-attention", no_argument, NULL, OPT_ROPE_IN_ATTENTION},
    {"own-small-gemms", required_argument, NULL, OPT_OWN_SMALL_GEMMS},
    {"overlap-steps", no_argument, NULL, OPT_OVERLAP_STEPS},
    {"fuse-norms", no_argument, NULL, OPT_FUSE_NORMS},
    {"fold-norms", no_argument, NULL, OPT_FOLD_NORMS},
    {"no-fold-norms", no_argument, NULL, OPT_NO_FOLD_NORMS},
    {"gemm-split-search", no_argument, NULL, OPT_GEMM_SPLIT_SEARCH},
    {"no-gemm-split-search", no_argument, NULL, OPT_NO_GEMM_SPLIT_SEARCH},
    {"kv-cache-dtype", required_argument, NULL, OPT_KV_DTYPE},
    {"db", required_argument, NULL, OPT_DB},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"temperature", required_argument, NULL, OPT_TEMPERATURE},
    {"top-p", required_argument, NULL, OPT_TOP_P},
    {"top-k", required_argument, NULL, OPT_TOP_K},
    {"min-p", required_argument, NULL, OPT_MIN_P},
    {"max-new-tokens", required_argument, NULL, OPT_MAX_NEW_TOKENS},
    {"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"api-key-env", required_argument, NULL, OPT_API_KEY_ENV},
    {"api", required_argument, NULL, OPT_API},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"request-n", required_argument, NULL, OPT_REQUEST_N},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {"outage-wait", required_argument, NULL, OPT_OUTAGE_WAIT},
    {NULL, 0, NULL, 0},
};

typedef struct run_args {
    ssf_run_config cfg;
    const char *metrics, *backend, *generations, *db, *api_key_env;
    ssf_openai_options openai;
    ssf_engine_options engine;
    const char *stop[16];
    int quiet;
    int profile_given;
    int chat_template_given;
    int open_status;  /* why no backend opened: EXIT_USAGE, or EXIT_WORK for bad files */
    char *model_path; /* a --model directory as an absolute path, which cfg.model points to */
    unsigned char given[OPT_END - OPT_COMMAND_BASE]; /* the command's options on the line */
} run_args;

/* Set by SIGINT/SIGTERM: the backend abandons in-flight requests and the
 * run ends with everything finished already stored. */
static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Strings that go into the stored configuration and the requests must be
 * UTF-8: jansson, which writes both, refuses anything else. */
static int utf8_arg(const char *opt, const char *arg)
{
    if (ssf_utf8_valid(arg, strlen(arg))) return 0;
    cli_error("--%s: the value is not valid UTF-8; give it in UTF-8", opt);
    return -1;
}

static int name_arg(const char *opt, const char *arg, const char *a, const char *b, int *out)
{
    if (strcmp(arg, a) == 0)
        *out = 1;
    else if (b && strcmp(arg, b) == 0)
        *out = 0;
    else {
        cli_error("--%s: unknown value '%s'; use %s%s%s", opt, arg, a, b ? " or " : "", b ? b : "");
        return -1;
    }
    return 0;
}

static int own_gemms_arg(const char *arg, int *out)
{
    static const struct {
        const char *name;
        ssf_own_gemms mode;
    } modes[] = {{"tuned", SSF_OWN_GEMMS_TUNED},
                 {"always", SSF_OWN_GEMMS_ALWAYS},
                 {"never", SSF_OWN_GEMMS_NEVER}};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        if (strcmp(arg, modes[i].name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    cli_error("--own-small-gemms: unknown value '%s'; use tuned, always or never", arg);
    return -1;
}

static int handle_sampling(run_args *a, int opt, const char *arg)
{
    ssf_sampling *s = &a->cfg.sampling;
    switch (opt) {
    case OPT_TEMPERATURE:
        return cli_number_arg("temperature", arg, 0, 100, &s->temperature);
    case OPT_TOP_P:
        return cli_number_arg("top-p", arg, 1e-9, 1, &s->top_p);
    case OPT_MIN_P:
        return cli_number_arg("min-p", arg, 0, 1, &s->min_p);
    case OPT_TOP_K:
        return cli_integer_arg("top-k", arg, 0, 1000000000L, &s->top_k);
    case OPT_MAX_NEW_TOKENS:
        return cli_integer_arg("max-new-tokens", arg, 1, 10000000L, &s->max_new_tokens);
    default:
        return -1;
    }
}

static int handle_openai(run_args *a, int opt, const char *arg)
{
    ssf_openai_options *o = &a->openai;
    long v;
    int flag;
    switch (opt) {
    case OPT_ENDPOINT:
        o->endpoint = arg;
        return 0;
    case OPT_API_KEY_ENV:
        a->api_key_env = arg;
        return 0;
    case OPT_API:
        if (name_arg("api", arg, "chat", "completions", &flag)) return -1;
        o->api = flag ? SSF_API_CHAT : SSF_API_COMPLETIONS;
        return 0;
    case OPT_CONCURRENCY:
        if (cli_integer_arg("concurrency", arg, 1, 65536, &v)) return -1;
        o->concurrency = (int)v;
        return 0;
    case OPT_REQUEST_N:
        if (strcmp(arg, "auto") == 0)
            v = 0;
        else if (cli_integer_arg("request-n", arg, 1, 128, &v))
            return -1;
        o->request_n = (int)v;
        return 0;
    case OPT_STREAM:
        if (strcmp(arg, "auto") == 0) {
            o->stream = -1;
        } else if (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0) {
            o->stream = strcmp(arg, "on") == 0;
        } else {
            cli_error("--stream: unknown value '%s'; use auto, on or off", arg);
            return -1;
        }
        return 0;
    case OPT_TIMEOUT:
        return cli_number_arg("timeout", arg, 1, 1e6, &o->timeout_s);
    case OPT_MAX_ATTEMPTS:
        if (cli_integer_arg("max-attempts", arg, 1, 100, &v)) return -1;
        o->max_attempts = (int)v;
        return 0;
    case OPT_OUTAGE_WAIT:
        return cli_number_arg("outage-wait", arg, 0, 1e6, &o->outage_wait_s);
    default:
        return handle_sampling(a, opt, arg);
    }
}

/* --NAME (on) or --no-NAME: sets its flag, refusing the pair given
 * together. */
static int on_or_off(const char *name, int on, int *asked, int *refused)
{
    *(on ? asked : refused) = 1;
    if (!*asked || !*refused) return 0;
    cli_error("--%s and --no-%s ask for opposites; drop one", name, name);
    return -1;
}

static int handle_engine(run_args *a, int opt, const char *arg)
{
    ssf_engine_options *o = &a->engine;
    long v;
    switch (opt) {
    case OPT_DEVICE:
        if (strcmp(arg, "auto") != 0 && strcmp(arg, "cpu") != 0 && strcmp(arg, "cuda") != 0) {
            cli_error("--device: unknown device '%s'; use auto, cpu or cuda", arg);
            return -1;
        }
        o->device = arg;
        return 0;
    case OPT_SLOTS:
        if (cli_integer_arg("slots", arg, 1, 4096, &v)) return -1;
        o->dev.n_slots = (int)v;
        return 0;
    case OPT_MAX_CONTEXT:
        if (cli_integer_arg("max-context", arg, 2, 1 << 24, &v)) return -1;
        o->dev.max_context = (int)v;
        return 0;
    case OPT_THREADS:
        if (cli_integer_arg("threads", arg, 1, 1024, &v)) return -1;
        o->dev.threads = (int)v;
        return 0;
    case OPT_GPU_MEMORY:
        return cli_number_arg("gpu-memory-utilization", arg, 0.05, 0.99,
                              &o->dev.gpu_memory_utilization);
    case OPT_BLOCK_SIZE:
        if (cli_integer_arg("block-size", arg, 1, 1024, &v)) return -1;
        o->dev.block_size = (int)v;
        return 0;
    case OPT_KV_BLOCKS:
        if (cli_integer_arg("kv-blocks", arg, 1, 1L << 30, &v)) return -1;
        o->dev.n_blocks = (int)v;
        return 0;
    case OPT_NO_CUDA_GRAPHS:
        o->dev.disable_cuda_graphs = 1;
        return 0;
    case OPT_NO_FLASH_PREFILL:
        o->dev.disable_flash_prefill = 1;
        return 0;
    case OPT_NO_PDL:
        o->dev.disable_pdl = 1;
        return 0;
    case OPT_ROPE_IN_ATTENTION:
        o->dev.rope_in_attention = 1;
        return 0;
    case OPT_OWN_SMALL_GEMMS:
        return own_gemms_arg(arg, &o->dev.own_small_gemms);
    case OPT_OVERLAP_STEPS:
        o->dev.overlap_steps = 1;
        return 0;
    case OPT_FUSE_NORMS:
        o->dev.fuse_norms = 1;
        return 0;
    case OPT_FOLD_NORMS:
    case OPT_NO_FOLD_NORMS:
        return on_or_off("fold-norms", opt == OPT_FOLD_NORMS, &o->dev.fold_norms,
                         &o->dev.disable_fold_norms);
    case OPT_GEMM_SPLIT_SEARCH:
    case OPT_NO_GEMM_SPLIT_SEARCH:
        return on_or_off("gemm-split-search", opt == OPT_GEMM_SPLIT_SEARCH,
                         &o->dev.gemm_split_search, &o->dev.disable_gemm_split_search);
    case OPT_KV_DTYPE:
        return name_arg("kv-cache-dtype", arg, "fp8", "bf16", &o->dev.kv_fp8);
    case OPT_STOP:
        if (o->n_stop == sizeof a->stop / sizeof a->stop[0]) {
            cli_error("--stop: at most %zu stop strings", o->n_stop);
            return -1;
        }
        if (utf8_arg("stop", arg)) return -1;
        a->stop[o->n_stop++] = arg;
        o->stop = a->stop;
        return 0;
    default:
        return -1;
    }
}

static int handle_option(int opt, const char *arg, void *ud)
{
    run_args *a = ud;
    long v;
    int flag;
    if (opt >= OPT_COMMAND_BASE && opt < OPT_END) a->given[opt - OPT_COMMAND_BASE] = 1;
    switch (opt) {
    case OPT_METRIC:
        a->metrics = arg;
        return 0;
    case OPT_BACKEND:
        a->backend = arg;
        return 0;
    case OPT_GENERATIONS:
        a->generations = arg;
        return 0;
    case OPT_MODEL:
        a->cfg.model = arg;
        return utf8_arg("model", arg);
    case OPT_DB:
        a->db = arg;
        return 0;
    case OPT_QUIET:
        a->quiet = 1;
        return 0;
    case OPT_PROTOCOL:
        if (name_arg("protocol", arg, "ssft", "none", &flag)) return -1;
        a->cfg.protocol = flag ? SSF_PROTOCOL_SSFT : SSF_PROTOCOL_NONE;
        return 0;
    case OPT_COMPAT:
        if (name_arg("compat", arg, "ssft-lighteval", "none", &flag)) return -1;
        a->cfg.compat = flag ? SSF_COMPAT_SSFT_LIGHTEVAL : SSF_COMPAT_NONE;
        return 0;
    case OPT_PROFILE:
        a->profile_given = 1;
        return cli_profile_arg(arg, &a->cfg.profile);
    case OPT_CHAT_TEMPLATE:
        a->chat_template_given = 1;
        return cli_chat_template_arg(arg, &a->cfg.chat_template);
    case OPT_GROUPS:
        if (cli_integer_arg("groups", arg, 1, 64, &v)) return -1;
        a->cfg.groups = (int)v;
        return 0;
    case OPT_SAMPLES:
        if (cli_integer_arg("samples", arg, 1, 4096, &v)) return -1;
        a->cfg.samples = (int)v;
        return 0;
    case OPT_LIMIT:
        return cli_integer_arg("limit", arg, 1, 1000000000L, &a->cfg.limit);
    case OPT_SEED:
        if (cli_integer_arg("seed", arg, 0, 9000000000000000L, &v)) return -1;
        a->cfg.seed = (uint64_t)v;
        return 0;
    default:
        return opt >= OPT_DEVICE ? handle_engine(a, opt, arg) : handle_openai(a, opt, arg);
    }
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Splits "a,b,c" into a NULL-terminated array of copies; NULL, with the
 * error printed, when a name is empty or comes twice (a task named twice
 * would be planned twice and stored once). */
static char **split_list(const char *what, const char *s, size_t *n)
{
    char **out = ssf_xcalloc(1, sizeof *out);
    *n = 0;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        const char *problem = len == 0 ? "an empty name" : NULL;
        for (size_t i = 0; i < *n && !problem; i++)
            if (strlen(out[i]) == len && memcmp(out[i], p, len) == 0) problem = "a name twice";
        if (problem) {
            cli_error("%s '%s' has %s; give each once, separated by commas", what, s, problem);
            free_list(out, *n);
            return NULL;
        }
        out = ssf_xrealloc(out, (*n + 2) * sizeof *out);
        out[(*n)++] = ssf_xstrndup(p, len);
        out[*n] = NULL;
        p += len;
        if (!*p) return out;
    }
}

/* A backend that could not be opened.  The error's class decides the exit
 * status: an option refused as given is a bad command line (2); what the
 * files or the machine hold (a corrupt checkpoint, a malformed generations
 * line, no GPU, too little memory) is work that failed (1). */
static ssf_backend *open_failed(run_args *a, const ssf_error *err)
{
    cli_error("%s", err->msg);
    a->open_status = err->usage ? EXIT_USAGE : EXIT_WORK;
    return NULL;
}

/* Stop strings cut samples, so they are part of the run's identity. */
static void describe_stops(const run_args *a, ssf_buf *desc)
{
    for (size_t i = 0; i < a->engine.n_stop; i++)
        ssf_buf_printf(desc, ",stop=%s", a->engine.stop[i]);
}

static ssf_backend *open_replay(run_args *a, ssf_buf *desc)
{
    if (!a->generations) {
        cli_error("--backend replay needs --generations FILE");
        return NULL;
    }
    if (a->engine.n_stop) {
        cli_error("--stop: replay serves the texts as they were made; drop --stop");
        return NULL;
    }
    ssf_error err = {0};
    ssf_backend *b = ssf_backend_replay_new(a->generations, &err);
    if (!b) return open_failed(a, &err);
    /* The file is the samples: another file, or this one rewritten, is
     * another run.  (Its name alone would let outputs.jsonl rewritten with
     * another model's texts resume this run and mix the two.) */
    ssf_buf_printf(desc, "replay:%s", ssf_backend_replay_sha256(b));
    return b;
}

static ssf_backend *open_openai(run_args *a, ssf_buf *desc)
{
    ssf_openai_options *o = &a->openai;
    if (!o->endpoint) o->endpoint = getenv("SSFTEVAL_ENDPOINT");
    if (!o->endpoint) {
        cli_error("--backend openai needs --endpoint URL (e.g. http://127.0.0.1:8000/v1) or "
                  "SSFTEVAL_ENDPOINT");
        return NULL;
    }
    const char *key_env = a->api_key_env ? a->api_key_env : "OPENAI_API_KEY";
    o->api_key = getenv(key_env);
    if (a->api_key_env && !o->api_key) {
        cli_error("--api-key-env: %s is not set; export it or drop the option", key_env);
        return NULL;
    }
    o->model = a->cfg.model;
    o->stop = &interrupted;
    o->stop_strings = a->engine.stop;
    o->n_stop_strings = a->engine.n_stop;
    ssf_error err = {0};
    ssf_backend *b = ssf_backend_openai_new(o, &err);
    if (!b) return open_failed(a, &err);
    /* The model is part of the run's identity: without --model, the one
     * the server serves now, or a server restarted with another model would
     * resume this run and mix the two. */
    if (!a->cfg.model && !(a->cfg.model = ssf_backend_openai_model(b, &err))) {
        b->destroy(b);
        return open_failed(a, &err);
    }
    /* The server's address is not part of the run's identity (a restarted
     * server on another port serves the same model); the API is, since chat
     * and completions render prompts differently. */
    ssf_buf_printf(desc, "openai:%s", o->api == SSF_API_CHAT ? "chat" : "completions");
    describe_stops(a, desc);
    return b;
}

/* Whether an engine option sets how the CUDA device runs, not what it
 * computes: on the CPU it changes nothing (--kv-cache-dtype fp8, which
 * would, the CPU device refuses). */
static int cuda_speed_option(int opt)
{
    return opt == OPT_GPU_MEMORY || (opt >= OPT_NO_CUDA_GRAPHS && opt <= OPT_NO_GEMM_SPLIT_SEARCH);
}

/* One line naming the CUDA options given to a run on the CPU device, so
 * that a command line written for a GPU machine runs here as it would
 * there, and says what it leaves out. */
static void note_cuda_options(const run_args *a)
{
    ssf_buf names = {0};
    int n = 0;
    for (const struct option *o = run_options; o->name; o++)
        if (cuda_speed_option(o->val) && a->given[o->val - OPT_COMMAND_BASE])
            ssf_buf_printf(&names, "%s--%s", n++ ? ", " : "", o->name);
    if (n)
        fprintf(stderr, "engine: %s only tune%s the CUDA device: on the CPU %s nothing\n",
                names.data, n > 1 ? "" : "s", n > 1 ? "they change" : "it changes");
    ssf_buf_free(&names);
}

/* The engine reads the model directory; the prompt's chat template comes
 * from the model's tokenizer_config.json unless --chat-template says. */
static ssf_backend *open_engine(run_args *a, const ssf_hub *hub, ssf_buf *desc)
{
    if (!a->cfg.model) {
        cli_error("--backend engine needs --model DIR (a directory with config.json, "
                  "*.safetensors and tokenizer.json, or hf:ORG/NAME[@REV])");
        return NULL;
    }
    ssf_error err = {0};
    char *dir = NULL;
    int rc = ssf_model_resolve(a->cfg.model, hub, &dir, &err);
    if (rc) {
        cli_error("--model: %s", err.msg);
        a->open_status = EXIT_WORK;
        return NULL;
    }
    /* The run names a directory by its real path, so that m, m/ and
     * ../x/m resume one run (the fingerprint in its identity is the same). */
    if (strncmp(a->cfg.model, "hf:", 3) != 0 && (a->model_path = realpath(dir, NULL)))
        a->cfg.model = a->model_path;
    if (!a->chat_template_given) {
        char *cfg_path = ssf_path_join(dir, "tokenizer_config.json");
        rc = ssf_chat_template_detect(cfg_path, &a->cfg.chat_template, &err);
        free(cfg_path);
        if (rc) {
            cli_error("--model: %s", err.msg);
            a->open_status = EXIT_WORK;
            free(dir);
            return NULL;
        }
    }
    a->engine.interrupt = &interrupted;
    a->engine.log_progress = !a->quiet;
    ssf_model *model;
    ssf_tokenizer *tok;
    double t_files = ssf_monotonic_seconds();
    rc = ssf_backend_engine_open_files(dir, &model, &tok, &err);
    free(dir);
    if (rc) return open_failed(a, &err);
    /* The files opened: what fails now is the device refusing the options. */
    double t_device = ssf_monotonic_seconds();
    ssf_backend *b = ssf_backend_engine_open(model, tok, &a->engine, &err);
    if (!b) return open_failed(a, &err);
    if (strncmp(ssf_backend_engine_identity(b), "cpu", 3) == 0) note_cuda_options(a);
    double t_digest = ssf_monotonic_seconds();
    /* CPU and GPU differ in the last bits of every logit, and an fp8 KV
     * cache in more, so the device and the cache's precision are part of
     * the run's identity, as are the context and the stop strings, which
     * cut samples; slots, blocks and threads are not. */
    char weights[65];
    if (ssf_model_fingerprint(model, hub ? hub->cache_dir : NULL, a->quiet ? NULL : stderr, weights,
                              &err)) {
        b->destroy(b);
        return open_failed(a, &err);
    }
    ssf_buf_printf(desc, "engine:%s%s,ctx=%d,weights=%.16s", ssf_backend_engine_identity(b),
                   a->engine.dev.kv_fp8 ? "-fp8kv" : "", ssf_backend_engine_max_context(b),
                   weights);
    describe_stops(a, desc);
    if (!a->quiet) {
        /* where a run's start goes, beside the decode rate the engine reports */
        double t_ready = ssf_monotonic_seconds();
        fprintf(stderr, "engine: %s\n", ssf_backend_engine_describe(b));
        fprintf(stderr,
                "engine: ready in %.2f s: model files %.2f s, device %.2f s, weights' digest "
                "%.2f s\n",
                t_ready - t_files, t_device - t_files, t_digest - t_device, t_ready - t_digest);
    }
    return b;
}

/* The backends an option is for.  Given to another backend it would be
 * ignored, so the run is refused instead. */
enum { FOR_REPLAY = 1, FOR_OPENAI = 2, FOR_ENGINE = 4, FOR_ALL = 7 };

static const struct {
    const char *name, *by_flag; /* by_flag: the --backend that names it */
    int bit;
} backends[] = {{"replay", "--backend replay", FOR_REPLAY},
                {"openai", "--backend openai", FOR_OPENAI},
                {"engine", "--backend engine", FOR_ENGINE}};

static int option_backends(int opt)
{
    if (opt == OPT_GENERATIONS) return FOR_REPLAY;
    if (opt == OPT_STOP) return FOR_ALL; /* open_replay refuses it, saying why */
    if (opt >= OPT_DEVICE) return FOR_ENGINE;
    if (opt >= OPT_ENDPOINT) return FOR_OPENAI;
    return FOR_ALL;
}

/* The first option on the command line that the backend b would ignore,
 * refused by name.  by is what chose b; when it is an option of the same
 * command line the fix is to drop one of the two, else (SSFTEVAL_ENDPOINT,
 * --model alone) to name the option's backend. */
static int refuse_ignored(const run_args *a, size_t b, const char *by, int by_option)
{
    for (const struct option *o = run_options; o->name; o++) {
        int takes = option_backends(o->val);
        if (o->val < OPT_COMMAND_BASE || !a->given[o->val - OPT_COMMAND_BASE] ||
            (takes & backends[b].bit))
            continue;
        size_t its = 0;
        while (!(takes & backends[its].bit))
            its++;
        if (by_option)
            cli_error("--%s is an option of the %s backend, and %s selects the %s backend, which "
                      "would ignore it; drop one of them",
                      o->name, backends[its].name, by, backends[b].name);
        else
            cli_error("--%s is an option of the %s backend, and %s selects the %s backend, which "
                      "would ignore it; drop --%s or pass %s",
                      o->name, backends[its].name, by, backends[b].name, o->name,
                      backends[its].by_flag);
        return -1;
    }
    return 0;
}

/* Whether --model names a checkpoint for the engine (a directory with
 * config.json, or hf:ORG/NAME) rather than a server's model name. */
static int names_checkpoint(const char *model)
{
    if (strncmp(model, "hf:", 3) == 0) return 1;
    char *config = ssf_path_join(model, "config.json");
    int found = ssf_is_file(config);
    free(config);
    return found;
}

/* The backend the command line selects (an index into backends, or -1
 * with the error printed), *by what selected it and *by_option whether
 * that is an option given.  An endpoint exported in the environment does
 * not outrank a checkpoint named on the command line: that is refused as
 * ambiguous, where it used to send the directory's path to the server as
 * the model's name. */
static int choose_backend(const run_args *a, const char **by, int *by_option)
{
    const char *name = a->backend;
    *by = NULL;
    *by_option = 1;
    if (!name && a->generations) {
        name = "replay";
        *by = "--generations";
    } else if (!name && a->openai.endpoint) {
        name = "openai";
        *by = "--endpoint";
    } else if (!name && getenv("SSFTEVAL_ENDPOINT")) {
        if (a->cfg.model && names_checkpoint(a->cfg.model)) {
            cli_error("--model %s is a checkpoint, and SSFTEVAL_ENDPOINT (from the environment) "
                      "selects the openai backend; pass --backend engine to run it in process, "
                      "or --backend openai to send its name to the server",
                      a->cfg.model);
            return -1;
        }
        name = "openai";
        *by = "SSFTEVAL_ENDPOINT";
        *by_option = 0;
    } else if (!name && a->cfg.model) {
        name = "engine";
        *by = "--model (with no --endpoint or --generations)";
        *by_option = 0;
    }
    if (!name) {
        cli_error("run: no backend; pass --model DIR for the in-process engine, --backend openai "
                  "--endpoint URL, or --backend replay --generations FILE");
        return -1;
    }
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(name, backends[i].name) == 0) {
            if (!*by) *by = backends[i].by_flag;
            return (int)i;
        }
    cli_error("--backend: '%s' is not a backend; use engine, openai or replay", name);
    return -1;
}

static ssf_backend *open_backend(run_args *a, const ssf_hub *hub, ssf_buf *desc)
{
    const char *by;
    int by_option;
    int b = choose_backend(a, &by, &by_option);
    if (b < 0 || refuse_ignored(a, (size_t)b, by, by_option)) return NULL;
    if (backends[b].bit == FOR_REPLAY) return open_replay(a, desc);
    if (backends[b].bit == FOR_OPENAI) return open_openai(a, desc);
    return open_engine(a, hub, desc);
}

static int find_tasks(const cli *c, const char *list, const ssf_task ***tasks, size_t *n)
{
    size_t k;
    char **names = split_list("the task list", list, &k);
    if (!names) return EXIT_USAGE;
    *tasks = ssf_xcalloc(k + 1, sizeof **tasks);
    *n = 0;
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        const ssf_task *t = cli_find_task(c, names[i]);
        if (!t)
            rc = EXIT_USAGE;
        else
            (*tasks)[(*n)++] = t;
    }
    free_list(names, k);
    return rc;
}

/* Whether --samples means something to m: it is pass@K's n without the
 * protocol; avg@N and cons@K draw their own N and K, which it may repeat
 * (--metric avg@4 --samples 4) but not contradict (avg@4 --samples 8 drew
 * 4 samples a question). */
static int takes_samples(const ssf_metric *m, const ssf_metric_context *ctx)
{
    if (ctx->protocol == SSF_PROTOCOL_SSFT) return 0;
    return m->kind == SSF_METRIC_PASS_AT_K ||
           (m->kind == SSF_METRIC_AVG_AT_N && m->n == ctx->samples) ||
           (m->kind == SSF_METRIC_CONS_AT_K && m->k == ctx->samples);
}

/* --samples and --groups size one kind of metric each; given to a run
 * with none of that kind, they would be silently ignored. */
static int refuse_unused_sizes(const run_args *a, int samples_taken, int takes_groups)
{
    if (a->cfg.samples > 0 && !samples_taken) {
        cli_error("--samples %d: no metric of this run draws that many (pass@K draws --samples "
                  "samples a question without --protocol ssft, avg@N N, cons@K K); drop it or "
                  "make it agree",
                  a->cfg.samples);
        return EXIT_USAGE;
    }
    if (a->cfg.groups > 0 && !takes_groups) {
        cli_error("--groups sets S, the groups of the SSFT protocol's cons@6:native and "
                  "pass@1:tagK (and of cons@K under --compat), and no metric of this run has "
                  "them; drop --groups");
        return EXIT_USAGE;
    }
    return 0;
}

/* Checks every metric against every task before anything is opened, so
 * a typo or a k past --samples is a usage error, not a failed run.  A
 * task's own SSFT metrics are left for the run, which leaves them out when
 * it runs without the protocol. */
static int check_metrics(const run_args *a)
{
    int samples_taken = 0, takes_groups = 0;
    for (size_t t = 0; t < a->cfg.n_tasks; t++) {
        const ssf_task *task = a->cfg.tasks[t];
        ssf_metric_context ctx = {.protocol = a->cfg.protocol,
                                  .compat = a->cfg.compat,
                                  .samples = a->cfg.samples,
                                  .groups = a->cfg.groups,
                                  .task_groups = task->groups};
        size_t n = a->cfg.metrics ? a->cfg.n_metrics : task->n_metrics;
        const char *const *names =
            a->cfg.metrics ? a->cfg.metrics : (const char *const *)task->metrics;
        if (ctx.samples == 0) ctx.samples = ssf_metric_default_samples(names, n, &ctx);
        for (size_t i = 0; i < n; i++) {
            const char *name = names[i];
            ssf_metric m;
            ssf_error err;
            if (ssf_metric_parse(name, &ctx, &m, &err) == 0) {
                samples_taken |= a->cfg.samples > 0 && takes_samples(&m, &ctx);
                takes_groups |= m.groups > 0; /* the metrics laid out by S (need_groups) */
                continue;
            }
            if (!a->cfg.metrics && ssf_metric_needs_tags(name, &ctx)) continue;
            if (a->cfg.metrics)
                cli_error("--metric: %s (task %s)", err.msg, task->name);
            else
                cli_error("task %s's default metrics: %s; choose others with --metric", task->name,
                          err.msg);
            return EXIT_USAGE;
        }
    }
    return refuse_unused_sizes(a, samples_taken, takes_groups);
}

/* Each task's data loads, before a model is loaded or a store created: a
 * run refused for its data then costs nothing and leaves no empty store.
 * (The run loads it again; task data is megabytes, and cached.) */
static int check_data(const cli *c, const run_args *a)
{
    ssf_data_options o = cli_data_options(c);
    for (size_t i = 0; i < a->cfg.n_tasks; i++) {
        ssf_docs docs;
        ssf_error err;
        if (ssf_task_load_docs(a->cfg.tasks[i], &o, &docs, &err)) {
            cli_error("%s", err.msg);
            return EXIT_WORK;
        }
        ssf_docs_free(&docs);
    }
    return 0;
}

static int execute(cli *c, run_args *a, const char *task_list)
{
    size_t n_metrics = 0;
    char **metrics = a->metrics ? split_list("--metric", a->metrics, &n_metrics) : NULL;
    if (a->metrics && !metrics) return EXIT_USAGE;
    a->cfg.metrics = (const char **)metrics;
    a->cfg.n_metrics = n_metrics;
    /* The reference's scores need its comparison quirks too, not only its votes. */
    if (a->cfg.compat == SSF_COMPAT_SSFT_LIGHTEVAL && !a->profile_given)
        a->cfg.profile = SSF_PROFILE_SSFT_LIGHTEVAL;
    if (a->cfg.compat == SSF_COMPAT_SSFT_LIGHTEVAL && a->cfg.protocol != SSF_PROTOCOL_SSFT)
        fprintf(stderr, "note: --compat ssft-lighteval without --protocol ssft: the reference's "
                        "votes and grading over untagged samples; the SSFT reference's own runs "
                        "were tagged (--protocol ssft)\n");
    int rc = find_tasks(c, task_list, &a->cfg.tasks, &a->cfg.n_tasks);
    if (rc == 0) rc = check_metrics(a);
    if (rc == 0) rc = check_data(c, a);
    ssf_buf desc = {0};
    ssf_backend *backend = rc == 0 ? open_backend(a, &c->hub, &desc) : NULL;
    if (rc == 0 && !backend) rc = a->open_status;
    ssf_store *store = NULL;
    ssf_error err;
    if (rc == 0 && ssf_store_open(a->db, 1, 0, &store, &err)) {
        cli_error("%s", err.msg);
        rc = EXIT_WORK;
    }
    if (rc == 0) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        a->cfg.backend_desc = desc.data;
        a->cfg.data = cli_data_options(c);
        a->cfg.progress = a->quiet ? -1 : isatty(STDERR_FILENO) ? 1 : 0;
        a->cfg.out = stdout;
        a->cfg.log = stderr;
        ssf_run_summary s;
        if (ssf_run_execute(&a->cfg, backend, store, &s, &err)) {
            cli_error("%s", err.msg);
            rc = EXIT_WORK;
        } else {
            /* The store's word: a run beside this one may have filled what failed here. */
            int whole = strcmp(s.status, "done") == 0;
            /* A replay file gives the same lines again: the fix is another file. */
            const char *hint = whole ? ""
                               : strcmp(backend->name, "replay") == 0
                                   ? "; the file lacks them or marks them failed (a file that "
                                     "has them is another run)"
                                   : "; run the same command again to retry them";
            fprintf(stderr,
                    "run %lld %s (%s): %zu samples planned, %zu stored before, %zu generated, "
                    "%zu failed%s\n",
                    (long long)s.run_id, s.status, s.resumed ? "resumed" : "new", s.planned,
                    s.reused, s.generated, s.failed, hint);
            rc = whole ? 0 : EXIT_WORK;
        }
    }
    ssf_store_close(store);
    if (backend) backend->destroy(backend);
    ssf_buf_free(&desc);
    free(a->cfg.tasks);
    free(a->model_path);
    free_list(metrics, n_metrics);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_args a = {.cfg = {.seed = 1234,
                          .chat_template = SSF_CHAT_QWEN25,
                          .profile = SSF_PROFILE_DEFAULT,
                          .sampling = {-1, -1, -1, -1, -1}},
                  .open_status = EXIT_USAGE};
    a.db = cli_default_db();
    ssf_openai_options_default(&a.openai);
    ssf_engine_options_default(&a.engine);
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    char help[sizeof help_head + sizeof help_engine];
    snprintf(help, sizeof help, "%s%s", help_head, help_engine);
    if (cli_parse(&c, argc, argv, run_options, handle_option, &a, help, &rc) == 0) {
        if (optind + 1 != argc) {
            cli_error("run: give the tasks as one argument, e.g. aime25,math_500; see `ssfteval "
                      "run --help`");
            rc = EXIT_USAGE;
        } else {
            rc = execute(&c, &a, argv[optind]);
        }
    }
    cli_free(&c);
    return rc;
}
