fn main() {
    println!("imgtool: under construction");
}
