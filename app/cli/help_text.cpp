#include "commands.h"

namespace l2a::cli {
namespace {

constexpr const char* kMainHelp =
    R"(l2a: run L2A language models on documents and see which tokens reach for global attention

Usage: l2a <command> [options]

Commands:
  info           describe a model: architecture, L2A settings, KV-cache memory per token
  run            run a document through a model; report routing, quality, memory and time
  export         convert a saved profile (.l2a) into another format
  bench          time prefill, attention or a what-if: l2a bench prefill --demo
  whatif         re-run a profile with other pruning or routing; compare quality, memory, time
  suggest-prune  propose layers to prune within a quality budget
  make-docs      long documents with long-range dependencies, and a byte-level tokenizer
  construct      turn a Qwen2/Qwen3 checkpoint into an L2A checkpoint
  train          train an L2A model's routers (or a model from scratch) on documents
  convert        store a model's weights as bf16, f16 or f32
  evaluate       measure whether a model's routing follows documents' long-range references
  explain        why a token went global: its attention over the tokens before it
  oracle         score each layer's router against where attention really goes
  serve          run models for remote clients (--engine): l2a serve --models DIR
  help           show the help of a command: l2a help run

Options:
  -h, --help     show this help
  --version      show the version

Without a model of your own, try: l2a run --demo
)";

constexpr const char* kInfoHelp = R"(Usage: l2a info (--model DIR | --demo) [--json]
       l2a info --engine URL [--token-file F] [--json]

Describes a model folder without running it: architecture, sizes, parameter count, the L2A
settings (sliding window, router temperature and threshold), and how many bytes of KV cache each
token costs with and without L2A. With --engine, describes a remote engine (`l2a serve`): its
version, devices, and the model folders and shapes it offers.

Options:
  --model DIR      a HuggingFace model folder (config.json and safetensors weights)
  --demo           the demo model shipped with the tool (a small trained byte-level L2A
                   model; see assets/models/l2a-demo/README.md)
  --engine URL     a remote engine: tcp://HOST:PORT, tls://HOST:PORT or unix:PATH
  --token-file F   its token; --tls-ca F: its certificate authority (tls://)
  --json           print the description as JSON
  -h, --help       show this help
)";

constexpr const char* kRunHelp =
    R"(Usage: l2a run (--model DIR | --demo) [--doc FILE | --tokens FILE] [options]

Runs the prefill of one document and reports, layer by layer, the share of tokens that ran
global attention, the model's loss on the document (mean NLL, perplexity), the KV-cache memory
with and without L2A, and the time taken.

Input:
  --model DIR         a HuggingFace model folder (config.json, safetensors, tokenizer.json)
  --demo              the demo model shipped with the tool (a small trained byte-level L2A
                      model); without --doc or --tokens it reads the built-in demo document (a
                      generated 8K document of facts recalled far later)
  --doc FILE          a UTF-8 text or Markdown document (invalid bytes are replaced, with a
                      warning)
  --tokens FILE       a JSON array of token ids, instead of --doc
  --max-tokens N      keep only the first N tokens of the input

Run:
  --routing POLICY    learned (default), global, local, random:F or top:F with 0 <= F <= 1
  --threshold X       router threshold theta in (0, 1) instead of the model's
  --prune LAYERS      layers whose global attention is removed, e.g. 0,5,7
  --seed S            seed of random routing (default 0)
  --chunk N           query rows computed at a time (default 256)
  --device NAME       cpu (default), cuda or cuda:N (builds with CUDA; `l2a info` lists GPUs)
  --dtype TYPE        auto (default: fp32 on the CPU, bf16 on CUDA), bf16, fp16 or fp32
                      (the CPU runs fp32 only)
  --backend NAME      attention: reference (default; blocked LibTorch ops, CPU and CUDA),
                      sdpa (CUDA: cuDNN / FlashAttention, masked for the window and the
                      routed tokens) or kernels (CUDA, bf16/fp16, head_dim 64 or 128: the
                      project's sliding-window and routed global attention kernels)
  --as-base           run an L2A model as its base model: full causal attention with the
                      local weights in every layer, no router
  --allow-nonfinite-weights
                      load weights that hold NaN or Inf (refused by default, naming the
                      tensor) and run with a warning; a layer whose output is not finite
                      still stops the run
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --no-trace          on CUDA, do not record the kernel timeline (by default every kernel,
                      memcpy and memset is recorded through CUPTI and attributed to its range;
                      without CUPTI, or with another profiler attached, the run goes on with
                      host timers only)
  --tensor-parallel N
                      split the model across N processes on this computer (CPU, fp32): each
                      keeps 1/N of the attention heads and of the MLP, and their partial sums
                      are added (all-reduce) after each attention and MLP; l2a starts the
                      other N-1 itself (their messages come as "rank 1: ..."). N must divide
                      the query heads, KV heads and intermediate size. The result is the
                      single-process one; the profile holds every rank's ranges (default 1).
                      With --device cuda (CUDA builds with NCCL): process r on GPU cuda:r,
                      any --dtype, NCCL_NVLS_ENABLE=0 unless set; needs N visible GPUs, and
                      the profile holds every GPU's kernels

Remote engine:
  --engine URL        run on a remote engine (`l2a serve`): tcp://HOST:PORT, tls://HOST:PORT,
                      unix:PATH, or ssh://[USER@]HOST[:PORT][/PATH/TO/l2a] (starts the server
                      through your ssh); --model then names a folder on the engine
  --token-file F      the engine's token; --tls-ca F: its certificate authority (tls://)
  --engine-doc PATH   a document on the engine (under its --docs) instead of --doc

Output:
  --out FILE          save the profile (.l2a) for `l2a export` and the desktop app
  --logits-out FILE   save the next-token logits, float32 [tokens, vocab], as tensor "logits"
                      of a safetensors file
  --json              print the profile as JSON (as `l2a export --format json`) instead of the
                      report
  --quiet             no progress bar
  -h, --help          show this help

Ctrl-C (or SIGTERM, SIGHUP) stops the run between chunks; nothing is written then.
)";

constexpr const char* kExportHelp =
    R"(Usage: l2a export --profile FILE [--format json|chrome|csv|html|pdf]
                  [--out FILE] [--compare FILE] [--quiet]

Converts a profile saved by `l2a run --out` into another format. Files are written atomically
(a temporary file renamed into place).

Formats:
  json     the profile as one JSON document: model, document, run options, per-layer routing,
           KV memory and timing, metrics; with --detail full (the default) also a `tokens`
           array (index, id, text, byte_begin, byte_end, nll) and each layer's `decisions`
           and `router_logits` (one per token)
  chrome   (or perfetto) Chrome Trace Event JSON for Perfetto (ui.perfetto.dev) or
           chrome://tracing: the layer/phase ranges on a host track (a tensor-parallel run's
           other ranks on tracks of their own, "rank 1", ...), kernels and memory copies on
           one track per GPU stream (when the run recorded them), a counter track of the
           routed fraction per layer; times in microseconds since the start of the run
  csv      three RFC 4180 tables: --out run.csv (or run) writes run.layers.csv (per layer:
           global fraction, routed tokens, pruned, KV bytes with and without L2A, time per
           phase, kernels, share of the run), run.tokens.csv (per token: position, id, byte
           range, text, NLL, layers routed, first and last routed layer) and run.routing.csv
           (per token and layer: token,layer,router_logit,probability,decision with
           probability = sigmoid(router_logit / sigmoid_temp); decision 0 in pruned layers)
  html     a self-contained report (no scripts, no network): run metadata, sparsity per layer,
           token x layer routing map, time per layer and phase, the document with its
           most-routed passages highlighted
  pdf      the same report on A4 pages with vector charts (builds with Qt 6; needs --out)

Options:
  --profile FILE   the .l2a profile to read
  --format NAME    json (default), chrome, csv, html or pdf
  --out FILE       where to write; - (the default) writes to standard output (not for csv)
  --compare FILE   html and pdf: a second profile of the same document (a what-if run, e.g.
                   pruned); the report adds the change in NLL per token and in routing per layer
  --detail LEVEL   json: full (default: with the per-token and per-layer arrays) or summary
  --quiet          no line on standard error naming each file written
  -h, --help       show this help
)";

constexpr const char* kBenchHelp =
    R"(Usage: l2a bench prefill (--model DIR | --demo) [--tensor-parallel N] [options]
       l2a bench prefill --shape NAME [--device cuda] [--tensor-parallel N] [options]
       l2a bench prefill --shape NAME --engine URL [--token-file F] [--compare-local] [options]
       l2a bench attention [options]
       l2a bench explain (--model DIR | --demo | --shape NAME [--seed S]) [--doc FILE]
                         [--tokens N] [--layer L] [--repeat N] [--device D] [--dtype T]
                         [--routing R] [--threads N] [--json] [--quiet]
       l2a bench whatif (--model DIR | --demo | --shape NAME [--seed S]) [--doc FILE]
                        [--tokens N] [--layer L] [--repeat N] [--device D] [--dtype T]
                        [--backend B] [--routing R] [--threads N] [--engine URL]
                        [--token-file F] [--json] [--quiet]

Every benchmark prints the CPU threads it uses and the machine's load average over the last
minute (also in --json), and warns on standard error when the load is above 0.5: other work is
running, and the timings will be slower and noisier than on an idle machine.

bench whatif times what the desktop app waits for when a layer's prune box is toggled: one base
run keeping residual checkpoints (every layer's when they fit: on the CPU in 2 GiB of host
memory, on a GPU in 40% of its free memory, in the model's dtype; else evenly spaced ones ending
at the last layer), then re-runs pruning --layer's global attention
(default: the last layer) from the nearest kept layer on, and the comparison with the base
(median of --repeat, default 5) on --tokens of the document (default 4096). --shape NAME uses
a published shape with random weights on random token ids and routes random:0.2 by default;
--device cuda runs on a GPU (bf16 weights unless --dtype says otherwise).

bench explain times what `l2a explain` and the routing oracle cost after one base run of
--tokens tokens (default 8192) of the document: the attention lens of the last token in
--layer (default: the middle layer) from the base's kept state (median of --repeat, default 5),
and the oracle of every layer (median of up to 3 runs), also per layer beyond the run itself
((oracle - base run) / layers). --shape NAME, --device cuda and --dtype as in bench whatif; on
a GPU the lens and the oracle use the project's attention kernels (bf16 and fp16).

bench prefill (--model DIR | --demo) times whole-model prefill at several lengths in one process
and prints a table: median and best wall time of the timed repeats, tokens per second, and the
process's peak resident memory. The input is the document (--doc) or the demo document,
repeated until it is long enough.

bench prefill --shape NAME builds a model of a published shape with random weights (no
download) and random token ids (seeded), and times the time to first token (prefill of every
token, logits of the last one only) of the L2A model ("ours": --backend, --routing) against the
same model run as its base model, full causal attention in every layer through cuDNN SDPA
("base"), with the ratio base/ours and the peak GPU memory of each. With --tensor-parallel N
the random model is split across N processes as in `l2a run` (with --device cuda rank r runs on
cuda:r and they sum through NCCL; with --device cpu through Gloo, in fp32): each makes its
slices of the same seeded weights, so together they hold the single-process model, and all run
the same tokens. The table's peaks are then the largest process's, and each process's peak GPU
memory and peak resident memory follow under its row (in --json: tensor_parallel, and each
result's ranks). N must divide the shape's query heads, KV heads and intermediate size
(qwen3-8b and qwen3-14b: 2, 4 or 8); --trace runs without it. On a GPU each row is followed by
the SM clock that ours and the base ran at in their timed runs (sampled every 5 ms through
NVML: median, range, power, the hottest sample's temperature and the share of samples held by
the power cap; --json: ours_clocks, base_clocks; with --tensor-parallel, rank 0's GPU), or why
it was not sampled: a GPU at its power cap runs slower, and two runs are comparable only at
comparable clocks.
bench prefill --shape NAME --engine URL times the time to first token of "ours" through a
remote engine (`l2a serve --shape NAME`): per length the engine's own time (what a run on that
machine takes), the time the client waited for the profile, the overhead in %, and the
profile's size on the wire. With --compare-local the same runs also go through a study in the
client's own process (the model loaded there too: a GPU machine with the engine on loopback),
and the overhead is also given against that local wait. bench whatif --engine URL times live
what-ifs there.
Shapes: qwen3-0.6b, qwen3-1.7b, qwen3-4b, qwen3-8b, qwen3-14b, qwen2.5-0.5b, qwen2.5-1.5b,
qwen2.5-3b, qwen2.5-7b, qwen2.5-14b.

Prefill options:
  --model DIR         a HuggingFace model folder
  --demo              the built-in demo model
  --doc FILE          the text to run (default: the demo document)
  --shape NAME        a published shape with random weights instead of a model folder
  --tokens N,N,...    lengths to time, e.g. 8192 or 128K (default 2048,8192; with --shape
                      32768)
  --repeat N          timed runs per length (default 3), after one untimed warm-up run
  --routing POLICY    as in `l2a run` (default learned; with --shape random:0.2)
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --tensor-parallel N
                      the model split across N processes, as in `l2a run` (each process uses
                      --threads threads; default 1)
  --json              print the results as JSON
  --quiet             no progress lines on standard error
 With --shape only:
  --device NAME       cuda (default), cuda:N or cpu
  --dtype TYPE        bf16 (default on CUDA), fp16 or fp32
  --backend NAME      attention backend of "ours": kernels (default on CUDA), sdpa or
                      reference; the base always runs sdpa (reference on the CPU)
  --seed S            seed of the weights, the tokens and random routing (default 0)
  --window W          sliding window of the L2A layers (default 4095)
  --chunk N           query rows computed at a time (default 256)
  --trace             also time "ours" under the CUPTI kernel tracer (as `l2a run` records the
                      timeline) and print the tracer's overhead in % and the kernels recorded,
                      and where the last traced run's GPU time went: kernel time per phase
                      (local, router, global, mlp, ...), the GPU's idle time between kernels
                      (waiting for the host) by the phase that ended each gap, how much of it
                      fell across range boundaries (a synchronization and the host's work
                      between ranges) rather than within one range, and the 15 kernels that
                      took the most, with the GPU's SM clock sampled every 5 ms
                      (NVML): over the run (median, range, power, share held by the power cap)
                      and inside each kernel
  --no-base           time "ours" alone (the base's full causal attention takes many times
                      longer at 512K tokens and beyond)
  --warmup N|full     tokens of the untimed warm-up run before each length's timed runs,
                      e.g. 4096 or 4K (default 4096, at most the length; also with --engine);
                      full: the length itself, so that the timed runs find the allocator's
                      blocks and cuBLAS's and cuDNN's plans for that length already made (with
                      --repeat 1 at a length above N the one timed run is otherwise the first
                      at its length)

bench attention (builds with CUDA, on a GPU) times one attention layer on random bf16 (--dtype
fp16: fp16) inputs with random routing (seeded): ours, as the global part (routed-query
compaction, packed global attention, gated add into the residual), the local part (sliding
window) and the whole L2A attention (local then global, in sequence), against full causal
attention through SDPA with the cuDNN and the FlashAttention backend forced (n/a with the
reason when a backend refuses). Before timing, each configuration is checked against an fp32
reference on sampled rows (64 routed, 64 local; relative error <= 1e-2) and the run stops if
it fails. Times are medians of CUDA-event timings after a warm-up; FLOPs are counted exactly
(4 x D x Hq per query-key pair visited), with TFLOP/s and the ratios whole/cuDNN and
global/cuDNN. The timed runs go in blocks (--order blocks, the default): each part's runs back
to back after its warm-up, so that each runs near the clock its own power draw leaves it under
the power cap. --order interleaved runs rounds of global, local, whole and cuDNN once each,
each part after every other equally often in each cycle of 4 rounds (6 without cuDNN; a
--repeat that is no multiple of it leaves the last cycle part-done), each round behind a
millisecond's head start that queues its launches: every part then runs at about the clock
the mix leaves
(the cap follows the last few hundred milliseconds, which cuDNN's long runs dominate), closer
to a prefill, whose kernels run among GEMMs, and cuDNN is timed with each row; flash, the
slowest, is timed in a block of its own either way. Under the times, the GPU's SM clock during
each part's timed runs (NVML, sampled every 5 ms: the median, the share of samples held by the
power cap, the share slowed for heat or by the hardware where any, and the hottest
temperature in degrees Celsius); JSON: each part's "clock", "timed_spans", "timed_span_ms"
and "timed_spans_at_ms" (when its timed runs went: [begin, end] in ms since the benchmark began).

Attention options:
  --tokens N,N,...    sequence lengths (default 8K,32K,64K,128K)
  --fractions F,...   routed shares in [0, 1] (default 0,0.1,0.2,0.5,1)
  --shapes H/K/D,...  query heads / KV heads / head dim (default 28/4/128,32/8/128)
  --window W          sliding window (default 4095)
  --repeat N          timed runs per measurement (default 10)
  --order ORDER       blocks (default): each part's runs back to back; interleaved: the
                      parts' runs in rounds
  --seed S            seed of the inputs and the routing (default 0)
  --device NAME       cuda (default) or cuda:N
  --dtype TYPE        bf16 (default) or fp16: the inputs, our kernels and the baselines
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --json              print the results as JSON
  --quiet             no progress lines on standard error
  -h, --help          show this help
)";

// ---- what-if ----

constexpr const char* kWhatIfHelp =
    R"(Usage: l2a whatif --profile FILE [--model DIR | --demo] [options]

Re-runs the document of a saved profile with other routing options and compares the variant
with the base. The options are checked against the profile's model before anything runs. The
base is re-run first to get its residual-stream checkpoints (the profile does not store them);
the variant then runs from the first layer its options change (the lowest newly pruned or
unpruned layer; layer 0 for threshold or routing changes).

Options:
  --profile FILE      the base run, saved by l2a run --out (its tokens and options)
  --model DIR         the model the profile was made with (default: the folder the profile
                      recorded, if it still holds the same model)
  --demo              use the demo model
  --prune LIST        layers whose global attention is removed, e.g. 3,7 ("" for none)
  --threshold X       router threshold theta, 0 < X < 1
  --routing POLICY    learned, global, local, random:F or top:F
  --seed N            seed of random routing
  --out FILE          save the variant's profile (.l2a)
  --ttft-repeats N    time to first token measured N times for each of base and variant
                      (default 3; 0: predicted only)
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --tensor-parallel N
                      base and variant split across N processes on this computer, as in
                      `l2a run` (a CPU run in fp32, or a GPU run one GPU per process; default 1)
  --engine URL        run on a remote engine (`l2a serve`): tcp://HOST:PORT, tls://HOST:PORT,
                      unix:PATH, or ssh://[USER@]HOST[:PORT][/PATH/TO/l2a] (starts the server
                      through your ssh); --model then names a folder on the engine
  --token-file F      the engine's token; --tls-ca F: its certificate authority (tls://)
  --json              print the comparison as JSON
  --quiet             no progress lines on standard error
  -h, --help          show this help

Reports mean NLL and perplexity (and their change), KL(base || variant) of the next-token
distributions (mean and max over tokens), top-1 agreement, the tokens whose loss changed most,
KV-cache bytes (and their share of the same model without L2A), the global fraction per layer
(0 in pruned layers), and time to first token. Measured: full prefills of base and variant
alike (logits of the last token only), taken in turn --ttft-repeats times each on the same
device and threads, as median (min-max, N runs). Predicted: a per-layer model calibrated on
the base (local, router and MLP time fixed; global time proportional to the keys the routed
tokens read).
)";

constexpr const char* kMakeDocsHelp =
    R"(Usage: l2a make-docs --out DIR [options]
       l2a make-docs --tokenizer-out tokenizer.json

Writes long documents whose text can only be predicted in places by looking far back: keys and
their values, defined terms and numbered claims stated early and recalled much later, and
passages repeated verbatim. Each DIR/doc_NNNNNN.txt comes with DIR/doc_NNNNNN.json, which lists
the byte spans of those long-range references (and of what they refer to), so that routing and
loss can be measured on exactly them. Values are random word pairs, codes or made-up words:
nothing nearby predicts them.

With --style handbook the documents are plain English instead: a technical handbook for an
imaginary machine shop, observatory, rail yard, library or kitchen (one per document), whose
named parts (part numbers, ratings, rooms, keepers), defined terms and numbered sections are
stated once and recalled much later, and whose warnings are repeated verbatim. The sidecars
list the same kinds of references.

Options:
  --out DIR             where the documents go (created if missing)
  --count N             documents to write (default 16)
  --tokens N            length of each document in bytes, i.e. byte-level tokens (default 8192)
  --seed S              seed (default 1); document i uses its own seed derived from S and i
  --min-distance N      bytes between a fact and its recall, at least (default 1536): more than
                        a sliding window of that size can see
  --style STYLE         synthetic (the default: codes and made-up words, as the demo model was
                        trained on) or handbook (English handbook prose)
  --mix FILE[,FILE...]  interleave chunks of these natural-text files with the generated filler,
                        in order from a place each document draws from its seed
  --dense               no filler, and most facts recalled: a fifth or more of the text needs
                        looking back (a first training stage on short documents teaches a model
                        to look back far sooner than the default mix does)
  --tokenizer-out FILE  also write a byte-level tokenizer.json (HuggingFace format: ids 0-255
                        are the bytes, then <|endoftext|>, <|im_start|>, <|im_end|>)
  --quiet               no summary on standard error
  -h, --help            show this help
)";

constexpr const char* kConstructHelp =
    R"(Usage: l2a construct --base DIR --out DIR [options]

Turns a Qwen2 or Qwen3 checkpoint (HuggingFace folder, sharded or not) into an L2A checkpoint
(model_type l2a_qwen3 or l2a_qwen2) as the L2A recipe does: the local and the global attention
sets both start as copies of the base attention (projections, biases, QK norms), the global
input norm as a copy of the input norm, and the router at zero, so that every token runs global
attention until the router is trained (l2a train). The tokenizer files come along. The output
is written to a temporary folder and renamed when complete.

Options:
  --base DIR         the Qwen2/Qwen3 model folder
  --out DIR          the L2A model folder to write (must not exist, unless --force)
  --window W         sliding window of the local attention, in tokens (default 4095)
  --temp T           router temperature tau (default 0.1)
  --threshold X      router probability threshold theta, in (0, 1) (default 0.5)
  --force            replace --out if it exists (only once the new folder is complete)
  --quiet            no progress bar or summary
  -h, --help         show this help
)";

constexpr const char* kTrainHelp =
    R"(Usage: l2a train --data DIR --out DIR (--model DIR | --config FILE --tokenizer FILE) [options]
       l2a train --data DIR --out DIR --resume [the same options]

Trains with the L2A objective: cross-entropy + lambda x (mean over layers of the sum over tokens
of p_t^2), p_t = sigmoid(z_t / tau), decisions made hard with a straight-through estimator;
lambda is 0 during warm-up and then ramps linearly to --lambda; with probability --dense-prob
per layer and step the global attention runs for every token (so skipped tokens get a router
gradient). AdamW (betas 0.9, 0.95), linear warm-up then cosine decay to 10% of --lr, gradient
clipping at norm 1, bf16 autocast on CUDA. Training windows are drawn at random from the
documents' tokens (seeded). DIR/last holds the latest checkpoint (an l2a_qwen3 model folder the
other commands load, plus the optimizer and the data generator's state, so --resume continues
exactly); DIR/train.csv logs loss, cross-entropy, mean p^2, lambda, learning rate, tokens/s and
each layer's share of routed tokens.

A plain Qwen2/Qwen3 model (--model, or --config with model_type qwen3) trains as well, with full
causal attention and cross-entropy alone: the base model that l2a construct then turns into an
L2A model. The L2A recipe: train the base, construct, then train --train attention.

Options:
  --data DIR           a folder of .txt documents (l2a make-docs writes some)
  --out DIR            checkpoints and the log
  --model DIR          start from this model (an L2A one made by l2a construct, or a plain one)
  --config FILE        start from random weights of this config.json (l2a_qwen3 or qwen3)
  --tokenizer FILE     with --config: the tokenizer.json (copied into the checkpoints)
  --train GROUP        attention (default with --model: attention sets, norms and router; FFN,
                       embeddings and LM head frozen), local (the same with the global attention
                       set and its input norm frozen too: the base's attention after construct)
                       or all (default with --config)
  --device NAME        cpu (default), cuda or cuda:N
  --steps N            optimizer steps (default 100)
  --batch N            sequences per step (default 4)
  --seq-len N          tokens per sequence (default 1024)
  --lr X               peak learning rate (default 3e-4)
  --warmup N           warm-up steps (default 10)
  --weight-decay X     AdamW weight decay of the matrices; norm gains and biases have none
                       (default 0.1)
  --lambda X           sparsity weight at the end of the ramp (default 1e-3)
  --lambda-ramp N      steps from the end of warm-up (and of --router-freeze) to full lambda
                       (default: to the last step)
  --lambda-layers F,.. one factor on lambda per layer, as many as the model has layers (default:
                       1 for each), e.g. 1,1,1,1,4,8 presses the last two layers' routers
                       harder toward local attention (--resume needs the same factors)
  --dense-prob X       probability of dense global attention per layer and step (default 0.1)
  --locality X         locality pressure (default 0: off): the loss gains X times the mean
                       attention mass on keys older than the window (the oracle's distant mass)
                       of the attention a token would run globally (a plain model's attention,
                       which l2a construct copies into the global set; an L2A model's global
                       set), over layers, heads and sampled positions. On
                       a base, before l2a construct: tokens that gain little from the far past
                       keep their attention near, so that the routers have tokens to tell apart
  --locality-window N  the window it counts from (default: an L2A model's; a plain model needs it)
  --locality-queries N query positions sampled per step (default 256); train.csv gains a
                       distant_mass column
  --router-freeze N    keep the routers fixed for the first N steps (default 0): after l2a
                       construct every token routes, and the local and global attention sets
                       first learn to work together
  --router-lr-scale X  the routers' learning rate is X times --lr (default 1)
  --seed S             seed of the weights (with --config), the data windows and the draws
  --save-every N       also keep DIR/step-N every N steps (default: only DIR/last at the end)
  --resume             continue from DIR/last (the options must be the same)
  --no-autocast        train in fp32 on CUDA too
  --checkpointing      gradient checkpointing: keep one layer's activations, recompute the
                       rest in the backward pass (less memory for long sequences, ~1/3 slower)
  --threads N          CPU threads (default: the cores the machine's load leaves free)
  --quiet              no progress bar or summary
  -h, --help           show this help
)";

constexpr const char* kConvertHelp =
    R"(Usage: l2a convert --model DIR --out DIR --dtype bf16|f16|f32 [--force] [--quiet]

Writes a copy of a model folder whose floating-point weights are stored in another type
(rounded to nearest even), e.g. an fp32 training checkpoint as bf16 at half the size. Integer
tensors, config.json and the tokenizer files are copied unchanged; the weights go into one
model.safetensors. The output is written to a temporary folder and renamed when complete.

Options:
  --model DIR        the model folder
  --out DIR          the folder to write (must not exist, unless --force)
  --dtype TYPE       bf16, f16 or f32
  --force            replace --out if it exists (only once the new folder is complete)
  --quiet            no progress bar or summary
  -h, --help         show this help
)";

constexpr const char* kEvaluateHelp =
    R"(Usage: l2a evaluate (--model DIR | --demo) --docs DIR [options]

Measures whether a model's learned routing means something, on documents with known long-range
references (l2a make-docs writes them, each .txt with a .json sidecar of reference spans; use
documents the model was not trained on). A reference token is one that can only be predicted by
looking far back (it repeats or completes what was stated earlier); a reference position is one
whose next token is a reference token. Each document runs four times: learned routing, every
token local, the busiest layer's global attention pruned, the sparsest layer's pruned. Reports:
- the global-attention rate at reference positions and at the others (shares of positions x
  layers), their ratio, the same rates at the reference tokens themselves, the overall global
  fraction, per layer and per kind of reference;
- the mean NLL of reference tokens and of the other tokens in each of the four runs;
- four checks: rate at references >= 3x the others; overall global fraction <= 30%; all local
  raises the reference NLL more than the other NLL; pruning the busiest layer raises the
  reference NLL more than pruning the sparsest.

Options:
  --model DIR        an L2A model folder with its tokenizer.json
  --demo             the built-in demo model
  --docs DIR         the documents (.txt with .json sidecars)
  --count N          only the first N documents
  --max-tokens N     only the first N tokens of each document
  --device NAME      cpu (default), cuda or cuda:N
  --backend NAME     reference (default), sdpa or kernels (CUDA)
  --threads N        CPU threads (default: the cores the machine's load leaves free)
  --out FILE         also write the result as JSON to FILE
  --json             print the result as JSON instead of the table
  --quiet            no progress bar
  -h, --help         show this help
)";

constexpr const char* kSuggestPruneHelp =
    R"(Usage: l2a suggest-prune --profile FILE --max-dnll X [--model DIR | --demo] [options]

Proposes layers whose global attention can be removed within a quality budget: greedily, it
tries pruning each remaining layer, keeps the one that raises the mean NLL least, and repeats
while the total rise stays within X nats per token. Prints the layers and the KV-cache bytes and
predicted time to first token they save.

Options:
  --profile FILE      the base run, saved by l2a run --out
  --model DIR         the model the profile was made with (default: the folder the profile
                      recorded, if it still holds the same model)
  --demo              use the demo model
  --max-dnll X        the budget: mean NLL may rise by at most X nats per token (X >= 0)
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --engine URL        run on a remote engine (`l2a serve`): tcp://HOST:PORT, tls://HOST:PORT,
                      unix:PATH, or ssh://[USER@]HOST[:PORT][/PATH/TO/l2a] (starts the server
                      through your ssh); --model then names a folder on the engine
  --token-file F      the engine's token; --tls-ca F: its certificate authority (tls://)
  --json              print the suggestion as JSON
  --quiet             no progress lines on standard error
  -h, --help          show this help
)";

constexpr const char* kExplainHelp =
    R"(Usage: l2a explain (--model DIR | --demo) [--doc FILE] --token T --layer L [options]
       l2a explain --profile FILE [--model DIR | --demo] --token T --layer L [options]

Shows why token T went global (or not) in layer L: the global attention of its query over the
tokens 0..T (the mean over heads, and each head's), the share of it on tokens older than the
local window ("distant mass"), and the router's logit, probability and decision. Tokens and
layers count from 0. With --doc (or the demo document) the document runs up to token T; with
--profile the saved run is re-run as far as it needs (the model it recorded, or --model).

Options:
  --model DIR         a HuggingFace model folder (an L2A model)
  --demo              the demo model shipped with the tool
  --doc FILE          the document (default with --demo: the demo document)
  --profile FILE      a saved run instead of a document
  --token T           the token to explain
  --layer L           the layer
  --top K             how many source tokens to list (default 10), overall and per head
  --device NAME       cpu (default), cuda or cuda:N (with --doc)
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --engine URL        run on a remote engine (as `l2a run --engine`); --token-file F its token
  --json              one JSON object: token, layer, decision, router_logit, probability,
                      distant_mass, window, sources [{token, weight, text}] (head-mean weights,
                      largest first), heads [{head, distant_mass, top [{token, weight}]}]
  --quiet             no progress lines on standard error
  -h, --help          show this help
)";

constexpr const char* kOracleHelp =
    R"(Usage: l2a oracle --profile FILE [--model DIR | --demo] [--out FILE] [--min-mass M]

Scores each layer's router against where attention really goes. One more run of the saved
profile computes, for every token and layer, the share of its global query's attention on
tokens older than the local window (its "distant mass"), without forming a T x T matrix. A
token "needs" global attention when that share is at least M (default 0.5). Per layer: the
ROC-AUC of the router logit for that label, the precision and recall of the decisions the run
made, the mean distant mass of routed and of local tokens, their ratio and its ceiling (the
ratio of the best choice of as many tokens: near 1, the layer's global attention looks far
for every token alike and no router could single any out), and the local tokens with the
highest distant mass ("missed"). --out saves the profile with the distant masses (export then
adds each layer's `oracle` object to JSON and a distant_mass column to the routing CSV).

Options:
  --profile FILE      the run to score, saved by l2a run --out
  --model DIR         the model it was made with (default: the folder it recorded)
  --demo              use the demo model
  --out FILE          save the profile with the routing oracle (.l2a)
  --min-mass M        the share that makes a token need global attention (0-1, default 0.5)
  --threads N         CPU threads (default: the cores the machine's load leaves free)
  --engine URL        run on a remote engine (as `l2a run --engine`); --token-file F its token
  --json              print the scores as JSON
  --quiet             no progress lines on standard error
  -h, --help          show this help
)";

constexpr const char* kServeHelp =
    R"(Usage: l2a serve [--listen HOST:PORT | --listen unix:PATH] [--token-file F] [--models ROOT]
                 [--docs ROOT] [--shape NAME[,NAME]] [--tls-cert C --tls-key K]
                 [--checkpoint-budget BYTES] [--max-message BYTES]
                 [--tensor-parallel N [--device cpu|cuda]] [--quiet]

Runs the study service for remote clients: `l2a run`, `whatif`, `suggest-prune`, `bench
prefill` and `bench whatif` with --engine tcp://HOST:PORT (or tls://, or ssh://, which starts
this command on the host itself), and the desktop app's File > Connect to Engine. Clients get
the same profiles as local runs, with the kernel timeline of CUDA runs. One run computes at a
time; the others wait and are told how many runs are ahead. A client's session keeps its base
run's checkpoints for its what-ifs; a client that disconnects cancels its run and frees its
memory.

Options:
  --listen HOST:PORT   where to listen (default 127.0.0.1:7787; port 0: any free port, printed
                       on standard output); unix:PATH listens on a Unix socket (mode 0700)
  --token-file F       clients must send the token in F (its first line); required on any
                       address other than loopback
  --models ROOT        model folders clients may open, by their names under ROOT (default:
                       $L2A_MODELS); the demo model is always offered
  --docs ROOT          documents clients may name on the server (else they send the text)
  --shape NAME         also offer published shapes with random weights, for benchmarks
  --tls-cert C         TLS certificate (PEM) and its key (--tls-key): clients use tls://
  --checkpoint-budget  host memory for a session's residual checkpoints on the CPU (default
                       2G; a GPU session keeps them in 40% of the GPU's free memory): within
                       it what-ifs re-run only from the layer they change
  --max-message BYTES  the largest request a client may send (default 256M)
  --until-stdin-closes stop when standard input closes (used by --engine ssh://)
  --tensor-parallel N  split every session's model across N processes on this computer, as
                       `l2a run --tensor-parallel` does (CPU, fp32; N must divide the heads and
                       intermediate size of the models clients open); the server sends each
                       request to the others before it runs, and a client's cancel takes
                       effect once the running request is done
  --device NAME        where the --tensor-parallel processes run: cpu (default; c10d Gloo) or
                       cuda (CUDA builds with NCCL: process r on GPU cuda:r, any --dtype; needs
                       N visible GPUs). Clients must ask for that kind of device (--device cpu,
                       or --device cuda); a request for the other is refused with an error and
                       the server goes on. Only with --tensor-parallel: without it (and with
                       --tensor-parallel 1) each client's request names its own device
  --quiet              no log lines on standard error
  -h, --help           show this help

Stop it with Ctrl-C (SIGINT) or SIGTERM: running requests are cancelled.
)";

}  // namespace

const char* help_text(std::string_view command) {
    if (command == "info") return kInfoHelp;
    if (command == "run") return kRunHelp;
    if (command == "export") return kExportHelp;
    if (command == "bench") return kBenchHelp;
    if (command == "whatif") return kWhatIfHelp;
    if (command == "suggest-prune") return kSuggestPruneHelp;
    if (command == "make-docs") return kMakeDocsHelp;
    if (command == "construct") return kConstructHelp;
    if (command == "train") return kTrainHelp;
    if (command == "convert") return kConvertHelp;
    if (command == "evaluate") return kEvaluateHelp;
    if (command == "serve") return kServeHelp;
    if (command == "explain") return kExplainHelp;
    if (command == "oracle") return kOracleHelp;
    return kMainHelp;
}

const char* tool_version() { return L2A_VERSION; }

}  // namespace l2a::cli
