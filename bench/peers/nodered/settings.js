// Node-RED settings for the Crossdock benchmark (see bench/harness/peers.py).
// Editor/admin API off, listens on 127.0.0.1:$PORT, no telemetry or update checks.
module.exports = {
  uiPort: parseInt(process.env.PORT || "1880", 10),
  uiHost: "127.0.0.1",
  flowFile: "flows.json",
  flowFilePretty: false,
  httpAdminRoot: false,
  credentialSecret: false,
  functionGlobalContext: { crypto: require("crypto") },
  logging: { console: { level: "warn", metrics: false, audit: false } },
  diagnostics: { enabled: false, ui: false },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  editorTheme: { tours: false, projects: { enabled: false } },
};
