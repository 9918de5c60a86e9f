/** Agent runtimes a workspace can run. The API rejects anything else; AMI and image pins are keyed by these. */
export const KNOWN_RUNTIMES = [
  'hermes',
  'langgraph',
  'claude-code',
  'crewai',
  'autogen',
  'deepagents',
  'openclaw',
  'gemini-cli',
] as const;
