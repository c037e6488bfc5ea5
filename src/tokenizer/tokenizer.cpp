// Placeholder so the target configures; replaced by the real implementation.
namespace eztinker {}
