fn dyt__dx(x; alpha = 0.5) {
  let t1 = alpha * x
  4 * (alpha * (sigmoid(-2 * t1) * sigmoid(2 * t1)))
}
fn dyt__dalpha(x; alpha = 0.5) {
  let t1 = alpha * x
  4 * (x * (sigmoid(-2 * t1) * sigmoid(2 * t1)))
}
fn dyisru__dx(x; beta = 301.1) {
  let t1 = sqrt(beta + x^2)
  (1 - (x / t1)^2) / t1
}
fn dyisru__dbeta(x; beta = 301.1) {
  let t1 = sqrt(beta + x^2)
  -0.5 * (x / t1 * (1 / t1) / t1)
}
fn derf__dx(x; alpha = 0.5, s = 0) = 1.1283791670955126 * (alpha * exp(-(s + alpha * x)^2))
fn derf__dalpha(x; alpha = 0.5, s = 0) = 1.1283791670955126 * (x * exp(-(s + alpha * x)^2))
fn derf__ds(x; alpha = 0.5, s = 0) = 1.1283791670955126 * exp(-(s + alpha * x)^2)
fn isru__dx(x; a = 1, c = 1) {
  let t1 = a * x
  let t2 = sqrt(c + t1^2)
  (a - t1 / t2 * (a * t1 / t2)) / t2
}
fn isru__da(x; a = 1, c = 1) {
  let t1 = a * x
  let t2 = sqrt(c + t1^2)
  (x - t1 / t2 * (x * t1 / t2)) / t2
}
fn isru__dc(x; a = 1, c = 1) {
  let t1 = a * x
  let t2 = sqrt(c + t1^2)
  -0.5 * (t1 / t2 * (1 / t2) / t2)
}
