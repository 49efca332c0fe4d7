import pkg from "../package.json" with { type: "json" };

/** The product's name and version (package.json is embedded by the bundler). */
export const APP_NAME = "Llama Async Proxy";
export const APP_VERSION: string = pkg.version;
