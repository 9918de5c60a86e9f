// Global test hooks: keep tests honest about the resources they open.
export {};
