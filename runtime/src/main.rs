fn main() {
    println!("runtime: under construction");
}
