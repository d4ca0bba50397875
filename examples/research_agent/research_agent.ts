/**
 * A research agent: it answers a `question.asked` event by asking a chat model (`model.chat`)
 * in a tool-calling loop. When the model asks for `http_fetch` or `fs_read`, the agent calls
 * that Toka tool and hands the result back to the model, until the model answers; then it
 * emits `answer.given` with the question and the answer.
 *
 * Every tool call made while handling the event, the model's replies included, is journaled:
 * if the process dies mid-loop, the next process that handles the event gets the recorded
 * replies back instead of asking the model again.
 *
 * Run it from its folder, whose `toka.json` names it (see README.md there):
 * `cd examples/research_agent && toka run`.
 *
 * @module
 */
import { defineAgent, type ToolInfo } from "../../mod.ts";
import { wireName } from "../../toolkit/mod.ts";

/** The payload of `question.asked`: the question, in words. */
export interface Question {
  /** What to find out. */
  question: string;
}

/** The payload of `answer.given`. */
export interface Answer {
  /** The question answered. */
  question: string;
  /** The model's answer. */
  answer: string;
  /** How many times the model was asked. */
  turns: number;
}

/** The tools the model may ask for, by their Toka names. */
export const RESEARCH_TOOLS: readonly string[] = ["http.fetch", "fs.read"];

/** The most model replies one question may take. */
export const MAX_TURNS = 8;

const SYSTEM = "You answer questions. Use the tools to read web pages (http_fetch) or local " +
  "files (fs_read) when the answer needs them, then answer briefly.";

interface Message {
  role: string;
  content: string | null;
  tool_calls?: { id: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/** The function a model sees for a Toka tool: its wire name and input schema. */
function asFunction(tool: ToolInfo) {
  return {
    type: "function" as const,
    function: {
      name: wireName(tool.name),
      description: tool.description,
      parameters: tool.inputSchema,
    },
  };
}

/**
 * The research agent. It needs `model.chat` registered (toka.json's `tools.model` or
 * `TOKA_MODEL`), and uses `http.fetch` and `fs.read` when they are registered.
 *
 * @example
 * ```ts ignore
 * import { createRuntime } from "@toka/runtime";
 * import { researchAgent } from "./research_agent.ts";
 *
 * const runtime = await createRuntime({ model: { model: "gpt-4o-mini" }, fs: {} });
 * runtime.register(researchAgent);
 * await runtime.start();
 * await runtime.emit({ kind: "question.asked", payload: { question: "What is in notes.txt?" } });
 * ```
 */
export const researchAgent = defineAgent({
  name: "researcher",
  subscribe: ["question.asked"],
  permissions: ["tool:model.chat:invoke", "tool:http.fetch:invoke", "tool:fs.read:invoke"],
  async handle(event, ctx) {
    const { question } = event.payload as Question;
    if (typeof question !== "string" || question.trim() === "") {
      ctx.logger.warn("Ignored a question.asked without a question");
      return;
    }
    const available = ctx.tools.list().filter((tool) => RESEARCH_TOOLS.includes(tool.name));
    const byWireName = new Map(available.map((tool) => [wireName(tool.name), tool.name]));
    const messages: Message[] = [
      { role: "system", content: SYSTEM },
      { role: "user", content: question },
    ];
    for (let turn = 1; turn <= MAX_TURNS; turn++) {
      const reply = await ctx.tools.call("model.chat", {
        messages,
        ...(available.length > 0 && { tools: available.map(asFunction) }),
      }) as { message: Message };
      messages.push(reply.message);
      const calls = reply.message.tool_calls ?? [];
      if (calls.length === 0) {
        const answer: Answer = { question, answer: reply.message.content ?? "", turns: turn };
        await ctx.emit({ kind: "answer.given", payload: answer });
        return;
      }
      for (const call of calls) {
        messages.push({
          role: "tool",
          tool_call_id: call.id,
          content: await runTool(byWireName.get(call.function.name), call.function.arguments),
        });
      }
    }
    throw new Error(`No answer after ${MAX_TURNS} model replies`);

    // A tool's failure goes back to the model as text: it may try another way.
    async function runTool(name: string | undefined, args: string): Promise<string> {
      if (name === undefined) return "error: no such tool";
      try {
        return JSON.stringify(await ctx.tools.call(name, JSON.parse(args)));
      } catch (error) {
        return `error: ${(error as Error).message}`;
      }
    }
  },
});
