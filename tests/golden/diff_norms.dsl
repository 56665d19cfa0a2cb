fn dyt__dx(x; alpha = 0.5) {
  let t1 = alpha * x
  4 * (alpha * (sigmoid(-2 * t1) * sigmoid(2 * t1)))
}
fn dyt__dalpha(x; alpha = 0.5) {
  let t1 = alpha * x
  4 * (x * (sigmoid(-2 * t1) * sigmoid(2 * t1)))
}
fn dyisru__dx(x; beta = 301.1) {
  let t1 = beta + x^2
  beta / (t1 * sqrt(t1))
}
fn dyisru__dbeta(x; beta = 301.1) {
  let t1 = beta + x^2
  -0.5 * (x / (t1 * sqrt(t1)))
}
fn derf__dx(x; alpha = 0.5, shift = 0) = 1.1283791670955126 * (alpha * exp(-(shift + alpha * x)^2))
fn derf__dalpha(x; alpha = 0.5, shift = 0) = 1.1283791670955126 * (x * exp(-(shift + alpha * x)^2))
fn derf__dshift(x; alpha = 0.5, shift = 0) = 1.1283791670955126 * exp(-(shift + alpha * x)^2)
fn isru__dx(x; a = 1, c = 1) {
  let t1 = c + (a * x)^2
  a * c / (t1 * sqrt(t1))
}
fn isru__da(x; a = 1, c = 1) {
  let t1 = c + (a * x)^2
  c * x / (t1 * sqrt(t1))
}
fn isru__dc(x; a = 1, c = 1) {
  let t1 = a * x
  let t2 = c + t1^2
  -0.5 * (t1 / (t2 * sqrt(t2)))
}
