// A small OpenAI-compatible HTTP server in front of llama.cpp (node-llama-cpp, CPU build, no downloads): the real
// inference backend of swarm's dispatch tests.
//
//   node server.mjs --model PATH [--listen 127.0.0.1:0] [--port-file PATH] [--name MODEL] [--threads 1]
//
// Prints one line "listening on 127.0.0.1:PORT" once the model is loaded. Endpoints:
//   GET  /v1/models
//   POST /v1/chat/completions   messages -> the model's ChatML template; stream or not
//   POST /v1/completions        prompt (a string); stream or not
//   GET  /stats                 test hook: {requests, completed, cancelled, generated_tokens}
// Sampling is greedy (temperature 0) whatever the request asks, so a prompt always gives the same text: the
// tests compare outputs across calls and across routes. max_tokens (default 16), stop (a string or up to 4),
// stream_options.include_usage are honoured. A client that disconnects stops its generation at the next token.
// One llama context with one sequence: requests are served one at a time, in arrival order.
import http from "node:http";
import fs from "node:fs";
import {getLlama} from "node-llama-cpp";

function parseArgs(argv) {
    const a = {listen: "127.0.0.1:0", name: "tiny-llama", threads: 1, portFile: null, model: null};
    for (let i = 2; i < argv.length; ++i) {
        const k = argv[i], v = argv[i + 1];
        if (v === undefined) throw new Error(`${k} needs a value`);
        if (k === "--model") a.model = v;
        else if (k === "--listen") a.listen = v;
        else if (k === "--port-file") a.portFile = v;
        else if (k === "--name") a.name = v;
        else if (k === "--threads") a.threads = Number(v);
        else throw new Error(`unknown argument ${k}`);
        ++i;
    }
    if (!a.model) throw new Error("--model PATH is required");
    if (!(Number.isInteger(a.threads) && a.threads >= 1)) throw new Error("--threads must be a positive integer");
    return a;
}

const args = (() => {
    try {
        return parseArgs(process.argv);
    } catch (e) {
        console.error(`server.mjs: ${e.message}`);
        process.exit(2);
    }
})();

// gpu:false and build:"never": the prebuilt CPU binary inside @node-llama-cpp/linux-x64, nothing fetched or built.
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: args.model});
const context = await model.createContext({contextSize: 2048, sequences: 1, threads: args.threads});
const sequence = context.getSequence();
const created = Math.floor(Date.now() / 1000);
const stats = {requests: 0, completed: 0, cancelled: 0, generated_tokens: 0};

// Requests run one at a time on the single sequence.
let queue = Promise.resolve();
function serially(fn) {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
}

function chatml(messages) {
    // The same text tokenizer.chat_template renders for these messages with add_generation_prompt.
    let s = "";
    for (const m of messages) s += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
    return s + "<|im_start|>assistant\n";
}

class BadRequest extends Error {
    constructor(status, message, param = null, code = null) {
        super(message);
        this.status = status;
        this.param = param;
        this.code = code;
    }
}

function sendError(res, status, message, param = null, code = null) {
    if (res.headersSent) return res.end();
    const type = status === 404 ? "not_found_error" : "invalid_request_error";
    res.writeHead(status, {"content-type": "application/json"});
    res.end(JSON.stringify({error: {message, type, param, code}}));
}

function validate(body, chat) {
    if (typeof body !== "object" || body === null || Array.isArray(body))
        throw new BadRequest(400, "the request body must be a JSON object");
    if (typeof body.model !== "string" || body.model === "") throw new BadRequest(400, "'model' is required", "model");
    if (body.model !== args.name)
        throw new BadRequest(404, `The model '${body.model}' does not exist`, "model", "model_not_found");
    if (chat) {
        if (!Array.isArray(body.messages) || body.messages.length === 0)
            throw new BadRequest(400, "'messages' must be a non-empty array", "messages");
        for (const m of body.messages)
            if (typeof m?.role !== "string" || typeof m?.content !== "string")
                throw new BadRequest(400, "each message needs a string 'role' and 'content'", "messages");
    } else if (typeof body.prompt !== "string") {
        throw new BadRequest(400, "'prompt' must be a string", "prompt");
    }
    const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? 16;
    if (!(Number.isInteger(maxTokens) && maxTokens >= 1 && maxTokens <= 1024))
        throw new BadRequest(400, "'max_tokens' must be an integer within 1..1024", "max_tokens");
    let stop = body.stop ?? [];
    if (typeof stop === "string") stop = [stop];
    if (!Array.isArray(stop) || stop.length > 4 || stop.some((s) => typeof s !== "string" || s === ""))
        throw new BadRequest(400, "'stop' must be a non-empty string or up to 4 of them", "stop");
    return {maxTokens, stop, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true};
}

// Generates up to maxTokens, calling emit(text) with each piece of text that is final (no stop string can
// still start in it). Returns {finish_reason, prompt_tokens, completion_tokens}.
async function generate(prompt, {maxTokens, stop}, emit, isAborted) {
    const tokens = model.tokenize(prompt, true);
    await sequence.clearHistory();
    const out = [];
    let text = "";    // detokenised so far
    let emitted = 0;  // characters of text already passed to emit
    let finish = "length";
    for await (const token of sequence.evaluate(tokens, {temperature: 0})) {
        if (isAborted()) {
            finish = null;
            break;
        }
        if (model.isEogToken(token)) {
            finish = "stop";
            break;
        }
        out.push(token);
        ++stats.generated_tokens;
        text = model.detokenize(out);
        const hit = stop.map((s) => text.indexOf(s, Math.max(0, emitted - s.length + 1))).filter((i) => i >= 0);
        if (hit.length > 0) {
            const cut = Math.min(...hit);
            if (cut > emitted) emit(text.slice(emitted, cut));
            emitted = cut;
            finish = "stop";
            break;
        }
        // Hold back a tail that could be the start of a stop string.
        let safe = text.length;
        for (const s of stop)
            for (let k = Math.min(s.length - 1, text.length); k > 0; --k)
                if (text.endsWith(s.slice(0, k))) {
                    safe = Math.min(safe, text.length - k);
                    break;
                }
        if (safe > emitted) {
            emit(text.slice(emitted, safe));
            emitted = safe;
        }
        if (out.length >= maxTokens) break;
    }
    if (finish === "length" && emitted < text.length) emit(text.slice(emitted));
    return {finish_reason: finish, prompt_tokens: tokens.length, completion_tokens: out.length};
}

async function complete(req, res, body, chat) {
    const opts = validate(body, chat);
    const id = `${chat ? "chatcmpl" : "cmpl"}-${stats.requests}`;
    const object = chat ? "chat.completion" : "text_completion";
    const prompt = chat ? chatml(body.messages) : body.prompt;
    let aborted = false;
    res.on("close", () => {
        if (!res.writableFinished) aborted = true;
    });
    const usageOf = (r) => ({
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        total_tokens: r.prompt_tokens + r.completion_tokens,
    });

    if (!opts.stream) {
        let text = "";
        const r = await serially(() => generate(prompt, opts, (t) => (text += t), () => aborted));
        if (r.finish_reason === null) return ++stats.cancelled;
        ++stats.completed;
        const choice = chat
            ? {index: 0, message: {role: "assistant", content: text}, logprobs: null, finish_reason: r.finish_reason}
            : {index: 0, text, logprobs: null, finish_reason: r.finish_reason};
        res.writeHead(200, {"content-type": "application/json"});
        res.end(JSON.stringify({id, object, created, model: args.name, choices: [choice], usage: usageOf(r)}));
        return;
    }

    const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
    const send = (choices, extra = {}) =>
        res.write(`data: ${JSON.stringify({id, object: chunkObject, created, model: args.name, choices, ...extra})}\n\n`);
    const piece = (text) =>
        chat ? {index: 0, delta: {content: text}, logprobs: null, finish_reason: null}
             : {index: 0, text, logprobs: null, finish_reason: null};
    res.writeHead(200, {"content-type": "text/event-stream", "cache-control": "no-cache"});
    const r = await serially(() => {
        if (aborted) return {finish_reason: null};
        if (chat) send([{index: 0, delta: {role: "assistant", content: ""}, logprobs: null, finish_reason: null}]);
        return generate(prompt, opts, (t) => send([piece(t)]), () => aborted);
    });
    if (r.finish_reason === null) {
        ++stats.cancelled;
        return res.end();
    }
    ++stats.completed;
    send([chat ? {index: 0, delta: {}, logprobs: null, finish_reason: r.finish_reason}
               : {index: 0, text: "", logprobs: null, finish_reason: r.finish_reason}]);
    if (opts.includeUsage) send([], {usage: usageOf(r)});
    res.end("data: [DONE]\n\n");
}

const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (req.method === "GET" && url.pathname === "/v1/models") {
        res.writeHead(200, {"content-type": "application/json"});
        return res.end(JSON.stringify({object: "list", data: [{id: args.name, object: "model", created, owned_by: "swarm-test"}]}));
    }
    if (req.method === "GET" && url.pathname === "/stats") {
        res.writeHead(200, {"content-type": "application/json"});
        return res.end(JSON.stringify(stats));
    }
    const chat = url.pathname === "/v1/chat/completions";
    if (!chat && url.pathname !== "/v1/completions") return sendError(res, 404, `no route for ${req.method} ${url.pathname}`);
    if (req.method !== "POST") return sendError(res, 405, `${url.pathname} takes POST`);
    const parts = [];
    let size = 0;
    req.on("data", (d) => {
        size += d.length;
        if (size > 1 << 20) {
            sendError(res, 413, "the request body is over 1 MiB");
            req.destroy();
        } else {
            parts.push(d);
        }
    });
    req.on("end", async () => {
        if (size > 1 << 20) return;
        ++stats.requests;
        let body;
        try {
            body = JSON.parse(Buffer.concat(parts).toString("utf8"));
        } catch (e) {
            return sendError(res, 400, `malformed JSON: ${e.message}`);
        }
        try {
            await complete(req, res, body, chat);
        } catch (e) {
            if (e instanceof BadRequest) return sendError(res, e.status, e.message, e.param, e.code);
            console.error(e);
            sendError(res, 500, `generation failed: ${e.message}`);
        }
    });
});

const colon = args.listen.lastIndexOf(":");
server.listen(Number(args.listen.slice(colon + 1)), args.listen.slice(0, colon), () => {
    const {address, port} = server.address();
    if (args.portFile) fs.writeFileSync(args.portFile, `${port}\n`);
    console.log(`listening on ${address}:${port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
