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

/** The runtime name under which the tenant's AMI / image is pinned (it is not a workspace runtime). */
export const TENANT_RUNTIME = 'tenant';
