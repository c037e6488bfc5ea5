// Placeholder CLI entry point; replaced by the real CLI (cli/ issue).
#include <cstdio>
int main() { std::puts("eztinker"); return 0; }
