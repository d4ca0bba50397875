/**
 * A `module` plugin: every tool this module exports (made with `defineTool`) is registered,
 * prefixed with the plugin's name. Manifest entry:
 * `"weather": { "transport": { "type": "module", "module": "./weather_tools.ts" } }`.
 *
 * @module
 */
import { defineTool } from "../../toolkit/mod.ts";

/** Feels-like temperature (Celsius) from temperature and wind speed (km/h), JAG/TI formula. */
export const windChill = defineTool({
  name: "wind_chill",
  description: "Feels-like temperature from air temperature (°C) and wind speed (km/h)",
  version: "1.0.0",
  inputSchema: {
    type: "object",
    properties: { tempC: { type: "number" }, windKmh: { type: "number", minimum: 0 } },
    required: ["tempC", "windKmh"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: { feelsLikeC: { type: "number" } },
    required: ["feelsLikeC"],
  },
  annotations: { readOnlyHint: true, idempotentHint: true },
  execute: ({ tempC, windKmh }: { tempC: number; windKmh: number }) => {
    const v = windKmh ** 0.16;
    const feels = 13.12 + 0.6215 * tempC - 11.37 * v + 0.3965 * tempC * v;
    return { feelsLikeC: Math.round(feels * 10) / 10 };
  },
});
